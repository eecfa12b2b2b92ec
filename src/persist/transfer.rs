//! A whole tenant as one stream of the log's records, and back: its
//! profile (the image, with the password's hash), policy module, own
//! settings, function libraries and every live key with its TTL. This is
//! what a tenant's move between nodes carries; the records, their framing
//! and checksums are the log's and snapshot's own, so the importing side
//! replays them with the loader.

use std::sync::Arc;

use ferrite_policy_abi::Writer;

use super::load::{LoadError, belongs_to, replay_tenant, replay_tenant_writes};
use super::record::{AOF_MAGIC, Frames, seal};
use super::record::{Record, frame_entries};
use crate::server::state::ServerState;
use crate::tenancy::Tenant;
use crate::tenancy::image::TenantImage;

/// What a tenant stream starts with.
pub const TENANT_MAGIC: &[u8; 16] = b"FERRITE-TENANT\0\x01";

/// Entries are framed in blocks of about this many bytes.
const BLOCK: usize = 1 << 20;

/// The tenant `t` as a stream of records, as it was at one instant.
pub fn export(state: &ServerState, t: &Tenant) -> Vec<u8> {
    export_at_cut(state, t, || {})
}

/// [`export`], running `at_cut` at the instant it copies (under the
/// tenant's exclusive lock): what it starts, the log's tap, sees exactly the
/// writes the copy does not. The lock is held only to take the cut: the
/// entries are written afterwards, copy-on-write, as a snapshot's are, while
/// the tenant's clients go on (so no compaction runs meanwhile).
pub fn export_at_cut(state: &ServerState, t: &Tenant, at_cut: impl FnOnce()) -> Vec<u8> {
    let _no_compaction = CopyTurn::take(state);
    let id = t.id().to_string();
    let mut out = TENANT_MAGIC.to_vec();
    let dbs: Vec<(usize, usize)> = {
        let _cut = t.space.lock_exclusive();
        at_cut();
        let now = state.now_ms();
        let epoch = next_epoch(state);
        Record::Tenant(TenantImage::of(t)).frame_into(&mut out);
        if t.policy.module().is_some() {
            Record::policy_of(t).frame_into(&mut out);
        }
        if let Some(settings) = Record::settings_of(t) {
            settings.frame_into(&mut out);
        }
        // Its statistics and bill so far go with it.
        Record::TenantStats { tenant: id.clone(), counters: t.counters(), ledger: t.ledger.items() }.frame_into(&mut out);
        if let Some(payload) = t.space.scripts.dump_libraries() {
            let argv = vec![b"FUNCTION".to_vec(), b"RESTORE".to_vec(), payload, b"REPLACE".to_vec()];
            Record::Command { now_ms: now, space: Some(id.clone()), db: 0, argv }.frame_into(&mut out);
        }
        t.space
            .existing()
            .map(|(db, ks)| {
                ks.begin_snapshot(epoch, now);
                (db, t.space.physical(db))
            })
            .collect()
    };
    let mut entries = 0;
    let mut block = Writer::with_capacity(BLOCK + BLOCK / 4);
    for (db, physical) in dbs {
        Record::Keyspace { space: Some(id.clone()), db: db as u32 }.frame_into(&mut out);
        let mut emit = |w: &mut Writer| -> std::io::Result<()> {
            frame_entries(&mut out, &w.buf);
            w.buf.clear();
            Ok(())
        };
        entries += t.space.physical_db(physical).snapshot_into(&mut block, BLOCK, &mut emit).expect("writing to memory");
        if !block.buf.is_empty() {
            emit(&mut block).expect("writing to memory");
        }
    }
    Record::End { entries }.frame_into(&mut out);
    out
}

/// A keyspace holds one copy-on-write copy at a time: a tenant's export
/// takes the compaction's turn (waiting out one that runs) and gives it
/// back when done.
struct CopyTurn<'a>(Option<&'a std::sync::atomic::AtomicBool>);

impl<'a> CopyTurn<'a> {
    fn take(state: &'a ServerState) -> CopyTurn<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        let Some(p) = state.persistence() else { return CopyTurn(None) };
        while p.rewriting.swap(true, SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        CopyTurn(Some(&p.rewriting))
    }
}

impl Drop for CopyTurn<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The epoch a copy marks entries with: the compaction's counter when the
/// log is on (so the next compaction picks another), else one of our own.
fn next_epoch(state: &ServerState) -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
    static OWN: AtomicU8 = AtomicU8::new(0);
    let counter = state.persistence().map_or(&OWN, |p| &p.epoch);
    // 1..=255, never the previous one.
    let epoch = counter.load(Relaxed) % 255 + 1;
    counter.store(epoch, Relaxed);
    epoch
}

/// Creates the tenant a stream describes, with its data. Refused if a
/// tenant of that id exists here; a stream that is corrupt, truncated or
/// miscounted leaves no tenant behind.
pub fn import(state: &ServerState, stream: &[u8]) -> Result<Arc<Tenant>, ImportError> {
    replay_tenant(state, stream)
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("tenant '{0}' already exists here")]
    Exists(String),
    #[error("the stream does not start with a tenant's profile")]
    NoProfile,
    #[error("the stream has a record for another space: {0}")]
    Foreign(String),
    #[error("the stream ends before its end record")]
    Truncated,
    #[error("the stream's entry count does not match: {0}")]
    Miscounted(String),
}

/// Makes what was imported durable: a compaction that includes it (the
/// import wrote no log records), waited for. Nothing to do without
/// persistence.
pub async fn make_durable(state: &Arc<ServerState>) -> Result<(), String> {
    use std::sync::atomic::Ordering::SeqCst;
    let Some(p) = state.persistence() else { return Ok(()) };
    // One already running took its cut before the import: wait it out.
    loop {
        match super::snapshot::start(state) {
            Ok(()) => break,
            Err(super::snapshot::StartError::Busy) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(e) => return Err(e.to_string()),
        }
    }
    while p.rewriting.load(SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    if p.last_save_ok.load(SeqCst) { Ok(()) } else { Err("the snapshot that makes it durable failed".into()) }
}

/// Tenant `id`'s writes among frames the log's tap copied (unsealed, any
/// space's), as a stream for TENANT.APPLY; None when there are none. A
/// transaction that also wrote elsewhere (an operator's EXEC) keeps only
/// the tenant's commands.
pub fn writes_of(mut tapped: Vec<u8>, id: &str) -> Result<Option<Vec<u8>>, ImportError> {
    if tapped.is_empty() {
        return Ok(None);
    }
    seal(&mut tapped);
    let mut data = AOF_MAGIC.to_vec();
    data.extend_from_slice(&tapped);
    let mut frames = Frames::new(std::path::Path::new("<tap>"), &data, AOF_MAGIC).map_err(LoadError::from)?;
    let mut out = TENANT_MAGIC.to_vec();
    let mut any = false;
    while let Some(r) = frames.next_record().map_err(LoadError::from)? {
        let kept = match r {
            Record::Batch(rs) => {
                let mine: Vec<Record> = rs.into_iter().filter(|r| belongs_to(r, id)).collect();
                (!mine.is_empty()).then_some(Record::Batch(mine))
            }
            r => belongs_to(&r, id).then_some(r),
        };
        if let Some(r) = kept {
            r.frame_into(&mut out);
            any = true;
        }
    }
    Ok(any.then_some(out))
}

/// Replays writes [`writes_of`] gathered into the imported tenant `id`.
pub fn apply(state: &ServerState, id: &str, stream: &[u8]) -> Result<u64, ImportError> {
    replay_tenant_writes(state, id, stream)
}
