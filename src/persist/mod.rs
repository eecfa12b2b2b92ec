//! Durability: an append-only log of every change (data writes as the
//! commands that made them, with the time they ran; tenant records; policy
//! modules), compacted in the background into a checksummed snapshot, and
//! both replayed at start-up.
//!
//! - [`record`]: the framed, checksummed records both files are made of.
//! - [`aof`]: the log writer (buffer, writer thread, fsync policy, rotation).
//! - [`snapshot`]: compaction: a copy-on-write cut of every keyspace plus
//!   the tenants and policies, written by a background thread.
//! - [`load`]: recovery at start-up.
//!
//! Replaying a command at the time it originally ran reproduces it exactly
//! (relative expiries, and keys that had expired by then, come out the
//! same), so only the few commands whose effect is random are rewritten
//! before they are logged (SPOP as SREM), and evictions are logged as DEL.

pub mod aof;
pub mod config;
pub mod load;
pub mod record;
pub mod settings;
pub mod snapshot;
pub mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

pub use config::{Fsync, PersistenceConfig};
pub use record::Record;

use crate::tenancy::Tenant;
use crate::tenancy::image::TenantImage;

/// A running server's persistence: the log and the compaction state.
pub struct Persistence {
    /// The data directory. (The rest of the configuration lives where it
    /// can change: `appendfsync` in the log, [`aof::Aof::fsync`], the
    /// automatic compaction thresholds below; `ServerState::persist_config`
    /// keeps what was configured.)
    pub(crate) dir: PathBuf,
    pub aof: Arc<aof::Aof>,
    /// Compaction in progress (at most one).
    pub rewriting: AtomicBool,
    /// Snapshot epoch of the last compaction (see `Keyspace::begin_snapshot`).
    pub epoch: AtomicU8,
    /// Unix seconds of the last successful snapshot, and whether the last
    /// attempt succeeded.
    pub last_save: AtomicU64,
    pub last_save_ok: AtomicBool,
    /// The log's sequence number at the last snapshot's cut: changes since
    /// are the difference.
    pub saved_seq: AtomicU64,
    /// Size of the snapshot file: with the log, what a start reads.
    pub snapshot_size: AtomicU64,
    /// [`Persistence::data_size`] right after the last compaction (or at
    /// start): automatic compaction compares against it, as Redis's
    /// `aof_base_size`.
    pub base_size: AtomicU64,
    /// Signalled when a compaction ends.
    pub done: tokio::sync::Notify,
    pub stats: CompactionStats,
    /// `auto-aof-rewrite-percentage` and `-min-size`, settable at runtime.
    pub auto_rewrite_percentage: AtomicU64,
    pub auto_rewrite_min_size: AtomicU64,
    /// Keys the start loaded from the snapshot, and those it found expired
    /// (Redis's `rdb_last_load_keys_loaded` / `_expired`).
    pub loaded_keys: u64,
    pub loaded_expired: u64,
}

/// Compactions for `INFO persistence` (Redis's `rdb_saves`,
/// `aof_last_rewrite_time_sec` and the like).
#[derive(Debug, Default)]
pub struct CompactionStats {
    pub completed: AtomicU64,
    pub failures_in_a_row: AtomicU64,
    /// Milliseconds the last one took, once there was one.
    pub last_ms: parking_lot::Mutex<Option<u64>>,
    /// When the running one started.
    pub started: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl CompactionStats {
    /// Seconds the last compaction took, or -1 (Redis's convention).
    pub fn last_secs(&self) -> i64 {
        self.last_ms.lock().map_or(-1, |ms| (ms / 1000) as i64)
    }

    /// Seconds the running compaction has taken so far, or -1.
    pub fn current_secs(&self) -> i64 {
        self.started.lock().map_or(-1, |t| t.elapsed().as_secs() as i64)
    }

    pub fn begin(&self) {
        *self.started.lock() = Some(std::time::Instant::now());
    }

    /// Records the end of the running compaction; returns how many
    /// milliseconds it took.
    pub fn end(&self, ok: bool) -> u64 {
        let took = self.started.lock().take().map_or(0, |t| t.elapsed().as_millis() as u64);
        *self.last_ms.lock() = Some(took);
        if ok {
            self.completed.fetch_add(1, Relaxed);
            self.failures_in_a_row.store(0, Relaxed);
        } else {
            self.failures_in_a_row.fetch_add(1, Relaxed);
        }
        took
    }
}

impl Persistence {
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    pub fn log(&self, rec: &Record) -> u64 {
        self.aof.append(rec)
    }

    /// Whether a start would replay anything from the log: records logged
    /// since the last snapshot, or a log written by an earlier run.
    pub fn log_holds_anything(&self) -> bool {
        self.changes() > 0 || self.aof.size.load(Relaxed) > record::AOF_MAGIC.len() as u64
    }

    /// Records logged since the last snapshot.
    pub fn changes(&self) -> u64 {
        self.aof.seq().saturating_sub(self.saved_seq.load(Relaxed))
    }

    /// Logs the tenant's record, and its policy when that changed; returns
    /// the last sequence number.
    pub fn log_tenant(&self, t: &Tenant, policy_changed: bool) -> u64 {
        self.log(&Record::Tenant(TenantImage::of(t)));
        // Its own settings, even none: a setting returned to the server's
        // default must replay as such.
        let seq = self.log(&Record::TenantSettings { tenant: t.id().to_string(), settings: t.own_settings() });
        if policy_changed { self.log(&Record::policy_of(t)) } else { seq }
    }

    /// Bytes a start reads: the snapshot and the log (Redis's
    /// `aof_current_size`, its base file and increments).
    pub fn data_size(&self) -> u64 {
        self.snapshot_size.load(Relaxed) + self.aof.size.load(Relaxed)
    }

    /// Whether the data has grown enough since the last compaction to
    /// compact: by the snapshot and log together, so a big data set is not
    /// rewritten whole every `auto-aof-rewrite-min-size` of log.
    pub fn rewrite_due(&self) -> bool {
        let (size, base) = (self.data_size(), self.base_size.load(Relaxed).max(1));
        let pct = self.auto_rewrite_percentage.load(Relaxed);
        pct > 0 && size >= self.auto_rewrite_min_size.load(Relaxed) && (size - base.min(size)) * 100 / base >= pct
    }
}

/// Logs a write command through a tail the caller holds (see [`aof::Tail`]).
pub fn log_command(tail: &mut aof::Tail, now_ms: u64, space: Option<&str>, db: usize, argv: &[&[u8]]) -> u64 {
    tail.append_with(|buf| record::frame_command_unsealed(buf, now_ms, space, db as u32, argv))
}
