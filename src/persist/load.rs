//! Start-up recovery: the snapshot (if any), then every log generation from
//! the snapshot's on, replayed in order. A log whose last record was cut
//! short by a crash loses that record (with a warning, and the file is
//! trimmed so appending resumes cleanly) when `aof-load-truncated` is on;
//! any other damage stops start-up with the file and offset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use ferrite_policy_abi::Reader;

use super::PersistenceConfig;
use super::aof::aof_path;
use super::record::{AOF_MAGIC, Frames, Next, ReadError, Record, SNAPSHOT_MAGIC};
use super::snapshot::SNAPSHOT_FILE;
use super::transfer::{ImportError, Piece, TENANT_MAGIC};
use crate::commands::{Ctx, lookup};
use crate::policy::PolicyModule;
use crate::policy::slot::Prepared;
use crate::protocol::Out;
use crate::server::client::ClientState;
use crate::server::state::ServerState;
use crate::space::Space;
use crate::store::encode::decode_entry;
use crate::tenancy::Tenant;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{file}: {e}")]
    Io { file: PathBuf, e: std::io::Error },
    #[error("{0}: the log generations are not contiguous (missing {1})")]
    Gap(PathBuf, u64),
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The log generation to keep appending to.
    pub generation: u64,
    pub snapshot_entries: u64,
    /// Snapshot entries that had expired by the time they were loaded.
    pub snapshot_expired: u64,
    pub commands: u64,
    pub truncated: bool,
    /// Unix seconds of the snapshot's cut, if there was one.
    pub snapshot_secs: Option<u64>,
    /// Tenants whose move here never committed, removed (their source
    /// still owns them); the log must say so once it is open.
    pub discarded: Vec<String>,
}

fn discard_uncommitted_imports(state: &ServerState) -> Vec<String> {
    let mut gone = Vec::new();
    for t in state.tenants.list() {
        if t.importing.load(Relaxed)
            && let Ok(t) = state.tenants.delete_tenant(t.id())
        {
            tracing::warn!(tenant = %t.id(), "a move of this tenant here never committed; its copy is discarded");
            t.space.clear();
            gone.push(t.id().to_string());
        }
    }
    gone
}

/// The log generations present in `dir`, ascending.
pub fn generations(dir: &Path) -> Vec<u64> {
    let mut g: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("appendonly.")?.strip_suffix(".faof")?.parse().ok())
        .collect();
    g.sort_unstable();
    g
}

fn read(file: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(file).map_err(|e| LoadError::Io { file: file.into(), e })
}

/// Loads `cfg.dir` into `state`.
pub fn recover(state: &ServerState, cfg: &PersistenceConfig) -> Result<Recovered, LoadError> {
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir).map_err(|e| LoadError::Io { file: dir.clone(), e })?;
    let mut replay = Replay::new(state);
    let mut out = Recovered::default();
    let snap = dir.join(SNAPSHOT_FILE);
    let mut base = None;
    if snap.exists() {
        let (generation, cut_ms, entries) = replay.snapshot(&snap)?;
        (base, out.snapshot_entries, out.snapshot_secs) = (Some(generation), entries, Some(cut_ms / 1000));
    }
    let gens: Vec<u64> = generations(dir).into_iter().filter(|g| base.is_none_or(|b| *g >= b)).collect();
    let mut expect = base.or(gens.first().copied()).unwrap_or(0);
    for (i, &g) in gens.iter().enumerate() {
        let file = aof_path(dir, g);
        if g != expect {
            return Err(LoadError::Gap(file, expect));
        }
        let last = i + 1 == gens.len();
        match replay.log(&file) {
            Ok(()) => {}
            Err(LoadError::Read(ReadError::Truncated { offset, .. })) if last && cfg.aof_load_truncated => {
                tracing::warn!(file = %file.display(), offset, "the log's last record is incomplete (a crash while writing it); dropping it");
                trim(&file, offset)?;
                out.truncated = true;
            }
            Err(e) => return Err(e),
        }
        expect = g + 1;
    }
    out.generation = gens.last().copied().or(base).unwrap_or(0);
    out.discarded = discard_uncommitted_imports(state);
    out.commands = replay.commands;
    out.snapshot_expired = replay.expired;
    replay.finish();
    Ok(out)
}

fn trim(file: &Path, len: u64) -> Result<(), LoadError> {
    let f = std::fs::OpenOptions::new().write(true).open(file).map_err(|e| LoadError::Io { file: file.into(), e })?;
    f.set_len(len).and_then(|_| f.sync_all()).map_err(|e| LoadError::Io { file: file.into(), e })
}

/// Applies records to the server, commands through the command table as a
/// client that is never blocked, rate-limited, quota-checked or logged.
struct Replay<'a> {
    state: &'a ServerState,
    client: ClientState,
    sink: Out,
    commands: u64,
    /// Snapshot entries skipped because they had expired.
    expired: u64,
    /// Snapshot: where its entries go.
    target: Option<(Option<String>, usize)>,
}

impl<'a> Replay<'a> {
    fn new(state: &'a ServerState) -> Replay<'a> {
        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let info = state.clients.register(addr, addr);
        let (mut client, _rx) = ClientState::new(info, true);
        client.loading = true;
        Replay { state, client, sink: Out::default(), commands: 0, expired: 0, target: None }
    }

    /// Ends a replay that is not the start-up's.
    fn unregister(self) {
        self.state.clients.unregister(self.client.id());
    }

    fn finish(self) {
        self.state.clients.unregister(self.client.id());
        // Keys that expired while the server was down go now, not on first touch.
        let now = self.state.now_ms();
        sweep_expired(&self.state.global, now);
        for t in self.state.tenants.list() {
            sweep_expired(&t.space, now);
        }
    }

    fn space(&self, owner: Option<&str>) -> Option<SpaceRef<'a>> {
        match owner {
            None => Some(SpaceRef::Global(&self.state.global)),
            Some(id) => self.state.tenants.get_tenant(id).ok().map(SpaceRef::Tenant),
        }
    }

    fn snapshot(&mut self, file: &Path) -> Result<(u64, u64, u64), LoadError> {
        let data = read(file)?;
        let mut frames = Frames::new(file, &data, SNAPSHOT_MAGIC)?;
        let corrupt = |offset: u64, why: &str| ReadError::Corrupt { file: file.into(), offset, why: why.into() };
        let Some(Record::Base { generation, cut_ms }) = frames.next_record().map_err(as_corrupt)? else {
            return Err(corrupt(16, "the snapshot does not start with its header record").into());
        };
        let mut entries = 0;
        loop {
            let offset = frames.offset();
            match frames.next_record().map_err(as_corrupt)? {
                None => return Err(corrupt(offset, "the snapshot ends without its end record").into()),
                Some(Record::End { entries: n }) if n == entries => return Ok((generation, cut_ms, entries)),
                Some(Record::End { .. }) => return Err(corrupt(offset, "the entry count does not match").into()),
                Some(Record::Keyspace { space, db }) => self.target = Some((space, db as usize)),
                Some(Record::Entries(block)) => entries += self.entries(&block).map_err(|why| corrupt(offset, &why))?,
                Some(other) => self.apply(other),
            }
        }
    }

    fn entries(&mut self, block: &[u8]) -> Result<u64, String> {
        let (owner, db) = self.target.clone().ok_or("entries before any keyspace record")?;
        let space = self.space(owner.as_deref()).ok_or_else(|| format!("entries for unknown tenant {owner:?}"))?;
        let ks = space.get().db(db);
        let now = self.state.now_ms();
        let mut r = Reader::new(block);
        let mut n = 0;
        while r.finish().is_err() {
            let e = decode_entry(&mut r).map_err(|e| e.to_string())?;
            n += 1;
            if e.expire_at.is_some_and(|t| now > t) {
                self.expired += 1;
                continue;
            }
            ks.write(e.key, now, |slot| {
                slot.set(e.value);
                if let Some(entry) = slot.entry_mut() {
                    entry.set_expire(e.expire_at);
                }
            });
        }
        Ok(n)
    }

    fn log(&mut self, file: &Path) -> Result<(), LoadError> {
        let data = read(file)?;
        let mut frames = Frames::new(file, &data, AOF_MAGIC)?;
        let mut argv = Vec::new();
        while let Some(next) = frames.next_in_place(&mut argv)? {
            match next {
                Next::Command(c) => self.command(c.now_ms, c.space, c.db as usize, &argv),
                Next::Other(rec) => self.apply(rec),
            }
        }
        Ok(())
    }

    fn apply(&mut self, rec: Record) {
        match rec {
            Record::Command { now_ms, space, db, argv } => {
                let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                self.command(now_ms, space.as_deref(), db as usize, &args)
            }
            Record::Batch(recs) => recs.into_iter().for_each(|r| self.apply(r)),
            Record::Tenant(img) => {
                // A tenant that moved away and is moved back: its old
                // record gives way, as it did when the import began.
                if self.state.tenants.get_tenant(&img.id).is_ok_and(|t| t.is_moved()) {
                    let _ = self.state.tenants.delete_tenant(&img.id);
                }
                if let Err(e) = self.state.tenants.restore(&img) {
                    tracing::warn!(tenant = %img.id, "cannot restore tenant: {e}");
                }
            }
            Record::TenantDelete(id) => {
                if let Ok(t) = self.state.tenants.delete_tenant(&id) {
                    t.space.clear();
                }
            }
            Record::Policy { tenant, module } => self.policy(&tenant, module),
            Record::TenantStats { tenant, counters, ledger } => {
                if let Ok(t) = self.state.tenants.get_tenant(&tenant) {
                    t.restore_counters(&counters);
                    t.ledger.restore(ledger);
                }
            }
            Record::TenantSettings { tenant, settings } => {
                let Ok(t) = self.state.tenants.get_tenant(&tenant) else { return };
                let server = self.state.config.read().tuning.clone();
                if let Err(e) = t.restore_settings(&settings, &server) {
                    tracing::warn!(tenant, "a saved setting no longer applies: {e}");
                }
            }
            // A tenant's import is logged as its stream came: its entries
            // after the keyspace they belong to.
            Record::Keyspace { space, db } => self.target = Some((space, db as usize)),
            Record::Entries(block) => {
                if let Err(e) = self.entries(&block) {
                    tracing::warn!("an imported block of entries does not load: {e}");
                }
            }
            Record::Import { tenant, open } => {
                if let Ok(t) = self.state.tenants.get_tenant(&tenant) {
                    t.importing.store(open, Relaxed);
                }
            }
            Record::Moved { tenant, to } => {
                if let Ok(t) = self.state.tenants.get_tenant(&tenant) {
                    t.space.clear();
                    t.set_moved(crate::tenancy::tenant::Moved { addr: to, auth: self.state.cluster_secret.clone() });
                    self.state.clients.wake_tenant(&tenant);
                }
            }
            Record::End { .. } => {}
            Record::KeyspaceSize { space, db, keys } => {
                if let Some(s) = self.space(space.as_deref()).filter(|s| (db as usize) < s.get().databases()) {
                    s.get().db(db as usize).reserve(keys.min(MAX_RESERVE) as usize);
                }
            }
            Record::Base { .. } => tracing::warn!("a snapshot's header found in the log; ignored"),
        }
    }

    fn policy(&self, tenant: &str, module: Option<(Vec<u8>, Vec<u8>)>) {
        let Ok(t) = self.state.tenants.get_tenant(tenant) else { return };
        let cfg = &self.state.policy;
        match module {
            None => t.remove_policy(cfg.keep_versions),
            Some((bytes, config)) => {
                let loaded = PolicyModule::compile(&bytes, &config, cfg).and_then(|m| Prepared::new(Arc::new(m), tenant, cfg));
                match loaded {
                    Ok(p) => t.install_policy(p, self.state.now_ms(), cfg.keep_versions),
                    Err(e) => tracing::error!(tenant, "the saved policy no longer loads: {e}; the tenant runs without it"),
                }
            }
        }
    }

    fn command(&mut self, now_ms: u64, owner: Option<&str>, db: usize, args: &[&[u8]]) {
        let Some(space) = self.space(owner) else {
            tracing::warn!(tenant = ?owner, "logged command for a tenant that does not exist; skipped");
            return;
        };
        let Some((idx, spec)) = args.first().and_then(|a| lookup(a)) else { return };
        self.client.db = db.min(space.get().databases() - 1);
        let mut ctx = Ctx {
            state: self.state,
            client: &mut self.client,
            out: &mut self.sink,
            now_ms,
            in_exec: true,
            touch: false,
            space: space.get(),
        };
        crate::commands::dispatch::replay(&mut ctx, idx, spec, args);
        self.commands += 1;
        if self.sink.buf.len() > 1 << 20 {
            self.sink.buf.clear();
        }
    }
}

/// Imports one piece of a tenant's stream (see `transfer::import_piece`).
pub(super) fn replay_piece(state: &ServerState, data: &[u8], into: Option<&str>) -> Result<Piece, ImportError> {
    let file = Path::new("<tenant stream>");
    let mut frames = Frames::new(file, data, TENANT_MAGIC).map_err(LoadError::from)?;
    // The first piece creates the tenant under the global space's lock, as
    // every tenant is created: a compaction's cut then either has it and its
    // first records or neither.
    let _creating = into.is_none().then(|| state.global.lock_exclusive());
    let (t, mut logged) = match into {
        None => start_import(state, &mut frames)?,
        Some(id) => {
            let t = state.tenants.get_tenant(id).map_err(|_| ImportError::NotImporting(id.into()))?;
            if !t.importing.load(Relaxed) {
                return Err(ImportError::NotImporting(id.into()));
            }
            (t, Vec::new())
        }
    };
    // Applied and logged under the tenant's lock: a cut falls before both
    // or after both.
    let _alone = t.space.lock_exclusive();
    let mut replay = Replay::new(state);
    let applied = replay_tenant_records(&mut replay, &mut frames, &t);
    replay.unregister();
    match applied {
        Ok(complete) => {
            let seq = state.persistence().map_or(0, |p| {
                logged.extend_from_slice(&data[16..]);
                p.aof.tail().append_with(|buf| buf.extend_from_slice(&logged))
            });
            Ok(Piece { tenant: t.clone(), complete, seq })
        }
        Err(e) => {
            discard_import(state, &t);
            Err(e)
        }
    }
}

/// Creates the tenant a stream's first record describes, importing;
/// returns it with the frames that log its start.
fn start_import(state: &ServerState, frames: &mut Frames) -> Result<(Arc<Tenant>, Vec<u8>), ImportError> {
    let Some(Record::Tenant(img)) = frames.next_record().map_err(LoadError::from)? else {
        return Err(ImportError::NoProfile);
    };
    // A tenant that moved away from here may come back: its old record
    // (kept to forward its connections) gives way.
    if let Ok(old) = state.tenants.get_tenant(&img.id) {
        if !old.is_moved() {
            return Err(ImportError::Exists(img.id));
        }
        let _ = state.tenants.delete_tenant(&img.id);
    }
    let t = state.tenants.restore(&img).map_err(|e| ImportError::Foreign(e.to_string()))?;
    t.importing.store(true, Relaxed);
    t.imported_entries.store(0, Relaxed);
    let mut logged = Vec::new();
    Record::Tenant(img.clone()).frame_into(&mut logged);
    Record::Import { tenant: img.id, open: true }.frame_into(&mut logged);
    Ok((t, logged))
}

/// The most keys one database of an import makes room for ahead of them
/// (a larger claim still imports, growing the table as keys arrive).
const MAX_RESERVE: u64 = 1 << 24;

/// Removes a tenant whose import failed, here and in the log.
pub fn discard_import(state: &ServerState, t: &Tenant) {
    if let Ok(t) = state.tenants.delete_tenant(t.id()) {
        t.space.clear();
    }
    if let Some(p) = state.persistence() {
        p.log(&Record::TenantDelete(t.id().to_string()));
    }
}

/// Applies a piece's records, which must all be tenant `t`'s; true when
/// the stream's end record came, with the count of every piece's entries.
fn replay_tenant_records(replay: &mut Replay, frames: &mut Frames, t: &Tenant) -> Result<bool, ImportError> {
    let id = t.id();
    let mine = |space: &Option<String>| space.as_deref() == Some(id);
    loop {
        match frames.next_record().map_err(LoadError::from)? {
            None => return Ok(false),
            Some(Record::End { entries: n }) => {
                let got = t.imported_entries.load(Relaxed);
                return if n == got { Ok(true) } else { Err(ImportError::Miscounted(format!("{got} entries, {n} announced"))) };
            }
            Some(Record::Keyspace { space, db }) if mine(&space) && (db as usize) < t.space.databases() => {
                replay.target = Some((space, db as usize))
            }
            Some(Record::KeyspaceSize { space, db, keys }) if mine(&space) && (db as usize) < t.space.databases() => {
                t.space.db(db as usize).reserve(keys.min(MAX_RESERVE) as usize)
            }
            Some(Record::Entries(block)) => {
                let n = replay.entries(&block).map_err(ImportError::Miscounted)?;
                t.imported_entries.fetch_add(n, Relaxed);
            }
            Some(r @ Record::Command { space: Some(_), .. }) if matches!(&r, Record::Command { space, .. } if mine(space)) => {
                replay.apply(r)
            }
            Some(r @ (Record::Policy { .. } | Record::TenantSettings { .. } | Record::TenantStats { .. })) if names(&r) == Some(id) => {
                replay.apply(r)
            }
            Some(other) => return Err(ImportError::Foreign(format!("{other:?}").chars().take(80).collect())),
        }
    }
}

/// Replays the writes a moving tenant made after its copy (sealed frames of
/// the source's log, after `TENANT_MAGIC`): its own commands, read in
/// place, and its profile's changes; then logs them here as they came, in
/// one append. Returns how many records were applied.
pub(super) fn replay_tenant_writes(state: &ServerState, id: &str, data: &[u8]) -> Result<u64, ImportError> {
    let file = Path::new("<tenant writes>");
    let mut frames = Frames::new(file, data, TENANT_MAGIC).map_err(LoadError::from)?;
    let t = state.tenants.get_tenant(id).map_err(|_| ImportError::NotImporting(id.into()))?;
    // Applied and logged under the tenant's lock: a compaction's cut falls
    // before or after both.
    let _alone = t.space.lock_exclusive();
    let mut replay = Replay::new(state);
    let mut argv = Vec::new();
    let mut n = 0;
    let foreign = |what: String| ImportError::Foreign(what.chars().take(80).collect());
    let result = (|| {
        while let Some(next) = frames.next_in_place(&mut argv).map_err(LoadError::from)? {
            match next {
                Next::Command(c) if c.space == Some(id) => replay.command(c.now_ms, c.space, c.db as usize, &argv),
                Next::Command(c) => return Err(foreign(format!("{c:?}"))),
                Next::Other(r) if belongs_to(&r, id) => replay.apply(r),
                Next::Other(r) => return Err(foreign(format!("{r:?}"))),
            }
            n += 1;
        }
        Ok(n)
    })();
    replay.unregister();
    if result.is_ok()
        && let Some(p) = state.persistence()
    {
        p.aof.tail().append_with(|buf| buf.extend_from_slice(&data[16..]));
    }
    result
}

/// Whether a logged record is about tenant `id` alone.
pub fn belongs_to(r: &Record, id: &str) -> bool {
    match r {
        Record::Command { space, .. } => space.as_deref() == Some(id),
        Record::Batch(rs) => rs.iter().all(|r| belongs_to(r, id)),
        Record::Tenant(img) => img.id == id,
        Record::Policy { .. } | Record::TenantSettings { .. } | Record::TenantStats { .. } => names(r) == Some(id),
        _ => false,
    }
}

/// The tenant a profile record is about.
fn names(r: &Record) -> Option<&str> {
    match r {
        Record::Policy { tenant, .. } | Record::TenantSettings { tenant, .. } | Record::TenantStats { tenant, .. } => Some(tenant),
        _ => None,
    }
}

fn as_corrupt(e: ReadError) -> ReadError {
    match e {
        // A snapshot is renamed into place only once complete: short is corrupt.
        ReadError::Truncated { file, offset } => ReadError::Corrupt { file, offset, why: "the snapshot is cut short".into() },
        e => e,
    }
}

/// A space found by owner: the global one, or a tenant's (kept alive).
enum SpaceRef<'a> {
    Global(&'a Space),
    Tenant(Arc<crate::tenancy::Tenant>),
}

impl SpaceRef<'_> {
    fn get(&self) -> &Space {
        match self {
            SpaceRef::Global(s) => s,
            SpaceRef::Tenant(t) => &t.space,
        }
    }
}

fn sweep_expired(space: &Space, now_ms: u64) {
    for (_, ks) in space.existing() {
        // The first call runs from the sweep cursor to the end, the second covers it all.
        for _ in 0..2 {
            ks.expire_step(now_ms, usize::MAX / 4);
        }
    }
}
