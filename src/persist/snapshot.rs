//! Compaction (BGREWRITEAOF, BGSAVE, SAVE and the automatic rewrite): a
//! snapshot of every tenant, policy and keyspace as of one instant, plus
//! the log from that instant on, replace the whole log.
//!
//! The cut takes the server's exclusive lock for as long as it takes to
//! mark every keyspace, capture the tenant records and rotate the log to a
//! new generation (logged as `cut_us`); writers then carry on while a background
//! thread writes the snapshot, each keyspace copy-on-write (see
//! `Keyspace::begin_snapshot`). When the snapshot is durable it is renamed
//! into place and the older log generations are deleted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use ferrite_policy_abi::Writer;

use super::aof::{aof_path, sync_dir};
use super::record::{Record, SNAPSHOT_MAGIC, frame_entries};
use crate::server::state::{ExitSave, ServerState};
use crate::space::Space;
use crate::tenancy::Tenant;
use crate::tenancy::image::TenantImage;

pub const SNAPSHOT_FILE: &str = "snapshot.fsnap";
/// Entries are written in blocks of about this many bytes.
const BLOCK: usize = 1 << 20;

/// Why a compaction did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("persistence is off ([persistence] appendonly = false)")]
    Off,
    /// One is running; each command words this its own way, as Redis does.
    #[error("a compaction is already in progress")]
    Busy,
    #[error("cannot start the snapshot thread: {0}")]
    Thread(String),
}

/// Everything captured at the cut.
struct Cut {
    /// How long the exclusive lock was held.
    held: std::time::Duration,
    generation: u64,
    /// The log's sequence number at the cut.
    seq: u64,
    cut_ms: u64,
    tenants: Vec<Arc<Tenant>>,
    images: Vec<Record>,
    /// (owner, databases that existed at the cut) of the global space (None)
    /// and of each tenant, in the order of `tenants`.
    dbs: Vec<Vec<(usize, usize)>>,
}

fn spaces<'a>(state: &'a ServerState, tenants: &'a [Arc<Tenant>]) -> impl Iterator<Item = (Option<&'a str>, &'a Space)> {
    std::iter::once((None, &state.global)).chain(tenants.iter().map(|t| (Some(t.id()), &t.space)))
}

/// Starts a compaction in the background. `Err` names why not (one is
/// already running, or persistence is off).
pub fn start(state: &Arc<ServerState>) -> Result<(), StartError> {
    let p = state.persistence().ok_or(StartError::Off)?;
    if p.rewriting.swap(true, SeqCst) {
        return Err(StartError::Busy);
    }
    p.stats.begin();
    let state = state.clone();
    // The cut is taken on the new thread: a command that starts a
    // compaction holds the shared lock the cut needs exclusively.
    let spawned = std::thread::Builder::new().name("ferrite-snapshot".into()).spawn(move || {
        let cut = take_cut(&state);
        let result = write_snapshot(&state, &cut);
        finish(&state, &cut, result);
    });
    if let Err(e) = spawned {
        p.stats.end(false);
        p.rewriting.store(false, SeqCst);
        return Err(StartError::Thread(e.to_string()));
    }
    Ok(())
}

fn take_cut(state: &ServerState) -> Cut {
    let p = state.persistence().expect("checked by start");
    let start = std::time::Instant::now();
    // Every space's lock, exclusively, in the one order: the global space's
    // first (tenants are created and deleted under it, so the list cannot
    // change), then the tenants' by id.
    let global = state.global.exec_lock.write();
    let mut tenants = state.tenants.list();
    tenants.sort_by(|a, b| a.id().cmp(b.id()));
    let held: Vec<_> = tenants.iter().map(|t| t.space.exec_lock.write()).collect();
    // 1..=255, never the previous epoch: entries carry the last one they were saved in.
    let epoch = p.epoch.load(Relaxed) % 255 + 1;
    p.epoch.store(epoch, Relaxed);
    let cut_ms = state.now_ms();
    let mut dbs = Vec::new();
    for (_, space) in spaces(state, &tenants) {
        // Each database with where it lives at the cut: a SWAPDB after the
        // cut must not change what the snapshot writes under its number.
        let existing: Vec<(usize, usize)> = space
            .existing()
            .map(|(i, ks)| {
                ks.begin_snapshot(epoch, cut_ms);
                (i, space.physical(i))
            })
            .collect();
        dbs.push(existing);
    }
    let mut images = Vec::new();
    for t in &tenants {
        images.push(Record::Tenant(TenantImage::of(t)));
        // Where a tenant that moved away went (its connections are still
        // forwarded), and an import not yet committed (discarded at a start).
        if let Some(to) = t.moved() {
            images.push(Record::Moved { tenant: t.id().to_string(), to: to.addr });
        }
        if t.importing.load(Relaxed) {
            images.push(Record::Import { tenant: t.id().to_string(), open: true });
        }
        if t.policy.module().is_some() {
            images.push(Record::policy_of(t));
        }
        images.extend(Record::settings_of(t));
    }
    // Each space's function libraries, as the command that restores them
    // (loading replays it after the tenants exist, before any entry).
    for (owner, space) in spaces(state, &tenants) {
        if let Some(payload) = space.scripts.dump_libraries() {
            let argv = vec![b"FUNCTION".to_vec(), b"RESTORE".to_vec(), payload, b"REPLACE".to_vec()];
            images.push(Record::Command { now_ms: cut_ms, space: owner.map(String::from), db: 0, argv });
        }
    }
    let seq = p.aof.seq();
    let generation = p.aof.rotate();
    drop(held);
    drop(global);
    Cut { held: start.elapsed(), generation, seq, cut_ms, tenants, images, dbs }
}

fn write_snapshot(state: &ServerState, cut: &Cut) -> std::io::Result<u64> {
    let dir = state.persistence().expect("persistence is on").dir().clone();
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    // Small records are gathered; a block's frame (larger) goes straight
    // to the file instead of being copied into the buffer first.
    let mut f = BufWriter::with_capacity(64 << 10, File::create(&tmp)?);
    f.write_all(SNAPSHOT_MAGIC)?;
    let mut frame = Vec::new();
    Record::Base { generation: cut.generation, cut_ms: cut.cut_ms }.frame_into(&mut frame);
    cut.images.iter().for_each(|r| r.frame_into(&mut frame));
    let mut entries = 0;
    let mut block = Writer::with_capacity(BLOCK + BLOCK / 4);
    for ((owner, space), dbs) in spaces(state, &cut.tenants).zip(&cut.dbs) {
        for &(db, physical) in dbs {
            Record::Keyspace { space: owner.map(String::from), db: db as u32 }.frame_into(&mut frame);
            let mut emit = |w: &mut Writer| -> std::io::Result<()> {
                frame_entries(&mut frame, &w.buf);
                w.buf.clear();
                f.write_all(&frame)?;
                frame.clear();
                Ok(())
            };
            entries += space.physical_db(physical).snapshot_into(&mut block, BLOCK, &mut emit)?;
            if !block.buf.is_empty() {
                emit(&mut block)?;
            }
        }
    }
    Record::End { entries }.frame_into(&mut frame);
    f.write_all(&frame)?;
    let file = f.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    sync_dir(&dir)?;
    Ok(entries)
}

/// After the snapshot: drop the log generations it replaces, or clean up.
fn finish(state: &ServerState, cut: &Cut, result: std::io::Result<u64>) {
    let p = state.persistence().expect("persistence is on");
    match result {
        Ok(entries) => {
            // The writer thread switches files asynchronously; the old one
            // must be closed before it is deleted.
            while p.aof.generation() < cut.generation {
                std::thread::sleep(Duration::from_millis(1));
            }
            remove_generations_before(p.dir(), cut.generation);
            p.snapshot_size.store(file_size(p.dir()), Relaxed);
            p.base_size.store(p.data_size(), Relaxed);
            p.last_save.store(cut.cut_ms / 1000, Relaxed);
            p.last_save_ok.store(true, Relaxed);
            p.saved_seq.store(cut.seq, Relaxed);
            let (cut_us, took_ms) = (cut.held.as_micros() as u64, p.stats.end(true));
            tracing::info!(entries, generation = cut.generation, cut_us, took_ms, "snapshot written; log compacted");
        }
        Err(e) => {
            for (space, dbs) in spaces(state, &cut.tenants).map(|(_, s)| s).zip(&cut.dbs) {
                dbs.iter().for_each(|&(_, physical)| space.physical_db(physical).abort_snapshot());
            }
            let _ = std::fs::remove_file(p.dir().join(format!("{SNAPSHOT_FILE}.tmp")));
            p.last_save_ok.store(false, Relaxed);
            p.stats.end(false);
            tracing::error!("snapshot failed: {e}");
        }
    }
    p.rewriting.store(false, SeqCst);
    p.done.notify_waiters();
}

/// On the way out: a compaction, when `save` asks for one, so the next
/// start loads a snapshot instead of replaying the log. One already
/// running is waited for first. A failure is logged, not fatal: the log
/// holds every write anyway.
pub async fn before_exit(state: &Arc<ServerState>, save: ExitSave) {
    let Some(p) = state.persistence() else { return };
    let due = match save {
        ExitSave::Never => false,
        ExitSave::Always => true,
        ExitSave::IfChanged => p.log_holds_anything(),
    };
    if !due {
        return;
    }
    loop {
        let done = p.done.notified();
        let started = start(state);
        if let Err(e @ (StartError::Off | StartError::Thread(_))) = &started {
            return tracing::warn!("no snapshot on shutdown: {e}");
        }
        // A compaction cannot finish while the log cannot be written (its
        // rotation waits for the disk): then the exit does not wait for it.
        tokio::pin!(done);
        loop {
            if !p.aof.write_ok.load(Relaxed) {
                return tracing::error!("no snapshot on shutdown: the log cannot be written ({})", p.aof.write_error());
            }
            tokio::select! {
                _ = &mut done => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        if started.is_ok() {
            break;
        }
    }
    if !p.last_save_ok.load(Relaxed) {
        tracing::warn!("the snapshot on shutdown failed; the next start replays the log");
    }
}

/// Size of the snapshot in `dir` (0 when there is none).
pub fn file_size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(SNAPSHOT_FILE)).map_or(0, |m| m.len())
}

/// Deletes log files older than `generation` (the snapshot contains them).
pub fn remove_generations_before(dir: &Path, generation: u64) {
    for g in super::load::generations(dir).into_iter().filter(|g| *g < generation) {
        if let Err(e) = std::fs::remove_file(aof_path(dir, g)) {
            tracing::warn!("cannot remove {}: {e}", aof_path(dir, g).display());
        }
    }
    let _ = sync_dir(dir);
}
