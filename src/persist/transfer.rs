//! A whole tenant as one stream of the log's records, and back: its
//! profile (the image, with the password's hash), policy module, own
//! settings, function libraries and every live key with its TTL. This is
//! what a tenant's move between nodes carries; the records, their framing
//! and checksums are the log's and snapshot's own, so the importing side
//! replays them with the loader.

use std::sync::Arc;

use ferrite_policy_abi::Writer;

use super::load::{LoadError, belongs_to, replay_piece, replay_tenant_writes};
use super::record::{AOF_MAGIC, Frames, seal};
use super::record::{Record, frame_entries};
use crate::server::state::ServerState;
use crate::tenancy::Tenant;
use crate::tenancy::image::TenantImage;

/// What a tenant stream starts with.
pub const TENANT_MAGIC: &[u8; 16] = b"FERRITE-TENANT\0\x01";

/// Entries are framed in blocks of about this many bytes.
const BLOCK: usize = 1 << 20;

/// Blocks of entries per piece: small enough that the target imports one
/// while the source encodes the next, large enough that a piece's round
/// trip is a small part of its cost.
const BLOCKS_PER_PIECE: usize = 4;

/// The tenant `t` as it was at one instant, in pieces (see [`export_at_cut`]).
pub fn export(state: &ServerState, t: &Tenant) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    export_at_cut(state, t, || {}, &mut |p| {
        pieces.push(p);
        true
    })
    .expect("collecting pieces never stops");
    pieces
}

/// The sender of pieces went away: the copy stopped.
#[derive(Debug)]
pub struct Stopped;

/// Streams the tenant `t` as it was at one instant to `send`, in pieces,
/// each a stream of records that starts with [`TENANT_MAGIC`]: the first
/// holds its profile (the image with the password's hash, policy module,
/// own settings, statistics and bill, function libraries), each next up to
/// [`BLOCKS_PER_PIECE`] blocks of entries after the keyspace record they
/// belong to, and the last ends with the end record and the entry count.
/// `send` returns false to stop the copy.
///
/// `at_cut` runs at the instant of the copy (under the tenant's exclusive
/// lock): what it starts, the log's tap, sees exactly the writes the copy
/// does not. The lock is held only to take the cut: the entries are
/// written afterwards, copy-on-write, as a snapshot's are, while the
/// tenant's clients go on (so no compaction runs meanwhile). Returns the
/// number of entries.
pub fn export_at_cut(
    state: &ServerState,
    t: &Tenant,
    at_cut: impl FnOnce(),
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<u64, Stopped> {
    let _no_compaction = CopyTurn::take(state);
    let id = t.id().to_string();
    let mut profile = TENANT_MAGIC.to_vec();
    let dbs: Vec<(usize, usize)> = {
        let _cut = t.space.lock_exclusive();
        at_cut();
        let now = state.now_ms();
        let epoch = next_epoch(state);
        Record::Tenant(TenantImage::of(t)).frame_into(&mut profile);
        if t.policy.module().is_some() {
            Record::policy_of(t).frame_into(&mut profile);
        }
        if let Some(settings) = Record::settings_of(t) {
            settings.frame_into(&mut profile);
        }
        // Its statistics and bill so far go with it.
        Record::TenantStats { tenant: id.clone(), counters: t.counters(), ledger: t.ledger.items() }.frame_into(&mut profile);
        if let Some(payload) = t.space.scripts.dump_libraries() {
            let argv = vec![b"FUNCTION".to_vec(), b"RESTORE".to_vec(), payload, b"REPLACE".to_vec()];
            Record::Command { now_ms: now, space: Some(id.clone()), db: 0, argv }.frame_into(&mut profile);
        }
        t.space
            .existing()
            .map(|(db, ks)| {
                ks.begin_snapshot(epoch, now);
                Record::KeyspaceSize { space: Some(id.clone()), db: db as u32, keys: ks.len() as u64 }.frame_into(&mut profile);
                (db, t.space.physical(db))
            })
            .collect()
    };
    let abort = |from: usize| dbs[from..].iter().for_each(|&(_, physical)| t.space.physical_db(physical).abort_snapshot());
    if !send(profile) {
        abort(0);
        return Err(Stopped);
    }
    let mut entries = 0;
    let mut block = Writer::with_capacity(BLOCK + BLOCK / 4);
    // Room for a piece's blocks even if they do not compress: a piece
    // grown by doubling was copied again at each step.
    let new_piece = || {
        let mut p = Vec::with_capacity(BLOCKS_PER_PIECE * (lz4_flex::block::get_maximum_output_size(BLOCK + BLOCK / 4) + 64) + 256);
        p.extend_from_slice(TENANT_MAGIC);
        p
    };
    let mut piece = new_piece();
    for (i, &(db, physical)) in dbs.iter().enumerate() {
        let keyspace = Record::Keyspace { space: Some(id.clone()), db: db as u32 };
        keyspace.frame_into(&mut piece);
        let mut blocks = 0;
        let mut emit = |w: &mut Writer| -> std::io::Result<()> {
            frame_entries(&mut piece, &w.buf);
            w.buf.clear();
            blocks += 1;
            if blocks == BLOCKS_PER_PIECE {
                let full = std::mem::replace(&mut piece, new_piece());
                keyspace.frame_into(&mut piece);
                blocks = 0;
                if !send(full) {
                    return Err(std::io::Error::other("stopped"));
                }
            }
            Ok(())
        };
        let written = t.space.physical_db(physical).snapshot_into(&mut block, BLOCK, &mut emit).and_then(|n| {
            if !block.buf.is_empty() {
                emit(&mut block)?;
            }
            Ok(n)
        });
        match written {
            Ok(n) => entries += n,
            Err(_) => {
                abort(i);
                return Err(Stopped);
            }
        }
    }
    Record::End { entries }.frame_into(&mut piece);
    if send(piece) { Ok(entries) } else { Err(Stopped) }
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

/// Creates the tenant that [`export`]'s pieces describe, with its data,
/// still importing (see [`import_piece`]). A piece that is corrupt,
/// truncated or miscounted leaves no tenant behind.
pub fn import(state: &ServerState, pieces: &[Vec<u8>]) -> Result<Arc<Tenant>, ImportError> {
    let mut into: Option<Arc<Tenant>> = None;
    for piece in pieces {
        let done = import_piece(state, piece, into.as_ref().map(|t| t.id()))?;
        if done.complete {
            return Ok(done.tenant);
        }
        into = Some(done.tenant);
    }
    if let Some(t) = into {
        super::load::discard_import(state, &t);
    }
    Err(ImportError::Truncated)
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
    #[error("tenant '{0}' is not being imported")]
    NotImporting(String),
}

/// What one piece of a tenant's stream did.
pub struct Piece {
    pub tenant: Arc<Tenant>,
    /// The stream's end record was in it, and the entry count matched.
    pub complete: bool,
    /// The log's sequence number of its records (0 without a log): the
    /// import is durable once that is.
    pub seq: u64,
}

/// Imports one piece of a tenant's stream: the first (`into` None) creates
/// the tenant, importing (nobody may connect as it until the move
/// commits), each next one adds to it. Every piece is logged here as it is
/// applied, so a restart brings the import back as far as it came; one
/// never committed is discarded then. On any error the tenant is removed.
pub fn import_piece(state: &ServerState, piece: &[u8], into: Option<&str>) -> Result<Piece, ImportError> {
    replay_piece(state, piece, into)
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
