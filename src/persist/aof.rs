//! The append-only log. The command path only frames records into a memory
//! buffer (no syscall, no lock held across one); a dedicated thread writes
//! the buffer out and fsyncs by the `appendfsync` policy. Under `always` a
//! connection awaits its last record's fsync before it sends its replies,
//! and one fsync covers everything buffered (group commit).
//!
//! Files are `appendonly.<generation>.faof`. Compaction rotates to the next
//! generation at its cut: what was logged before goes to the old file (made
//! durable first), what comes after to the new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::config::Fsync;
use super::record::{AOF_MAGIC, Record, seal};

/// Under `everysec` and `no`, buffered records are written out once per
/// this interval (under `always`, as soon as a connection waits). Short,
/// so the buffer stays small and warm in cache: it is handed back to the
/// command path after each write. (1 ms and 25 ms measured no better.)
pub const WRITE_INTERVAL_MS: u64 = 10;

pub fn aof_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("appendonly.{generation}.faof"))
}

/// The log's tail, held. A write command holds it from before it applies
/// its change until its record is framed, so writers that run concurrently
/// (on other threads, under the shared exec lock) are logged in the order
/// they changed a key, and replay reaches the same state.
pub struct Tail<'a> {
    aof: &'a Aof,
    pending: parking_lot::MutexGuard<'a, Pending>,
    appended: bool,
}

impl Tail<'_> {
    /// Frames whatever `frame` appends, whole frames with their checksums
    /// left at zero: the writer thread [`seal`]s them before writing, so the
    /// CRC is computed off the command path. Returns its sequence number.
    pub fn append_with(&mut self, frame: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let p = &mut *self.pending;
        if p.buf.capacity() == 0 {
            p.buf = std::mem::take(&mut p.spare);
        }
        let start = p.buf.len();
        frame(&mut p.buf);
        if let Some(tap) = &mut p.tap {
            tap.extend_from_slice(&p.buf[start..]);
        }
        p.seq += 1;
        self.appended = true;
        p.seq
    }
}

#[cfg(debug_assertions)]
std::thread_local! {
    static HOLDING_TAIL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Tail<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HOLDING_TAIL.with(|h| h.set(false));
        if self.appended && self.aof.fsync() == Fsync::Always {
            self.aof.wake.notify_one();
        }
    }
}

/// What the writer thread has done: the last record on disk (as durable as
/// the policy promises), and how many writes or fsyncs have failed.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    durable: u64,
    failures: u64,
}

/// How long the writer waits before retrying a failed write.
const RETRY_MS: u64 = 100;

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record framed into `buf`.
    seq: u64,
    /// Set by `rotate`: the bytes that belong to the current file, and the
    /// generation that starts after them.
    rotation: Option<(Vec<u8>, u64)>,
    /// The writer's last buffer, emptied, handed back: appends reuse memory
    /// that is already mapped (and likely cached) instead of a fresh buffer.
    spare: Vec<u8>,
    /// While a tenant moves: a copy of every frame appended (unsealed),
    /// the writes its new node must replay (see `persist::transfer`).
    tap: Option<Vec<u8>>,
}

pub struct Aof {
    /// The `appendfsync` policy, an index into [`Fsync::ALL`] (`CONFIG SET`
    /// changes it at runtime).
    fsync: std::sync::atomic::AtomicU8,
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<Progress>,
    /// The generation being written (see `generation`).
    file: Mutex<File>,
    generation: AtomicU64,
    /// Bytes of the current file.
    pub size: AtomicU64,
    /// False from a failed write or fsync until the next successful one;
    /// write commands are refused meanwhile (`MISCONF`, as in Redis).
    pub write_ok: AtomicBool,
    /// What the last failure said, for that error.
    last_error: Mutex<String>,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Opens (or creates) a log file for appending, writing the magic if new.
fn open_log(dir: &Path, generation: u64) -> std::io::Result<(File, u64)> {
    let path = aof_path(dir, generation);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let mut size = file.metadata()?.len();
    if size == 0 {
        file.write_all(AOF_MAGIC)?;
        file.sync_all()?;
        sync_dir(dir)?;
        size = AOF_MAGIC.len() as u64;
    }
    Ok((file, size))
}

/// Appends `more` to `to`, moving the buffer when `to` is empty (the
/// common case: nothing failed before).
fn append(to: &mut Vec<u8>, more: Vec<u8>) {
    if to.is_empty() {
        *to = more;
    } else {
        to.extend_from_slice(&more);
    }
}

/// Makes a directory's entries (new, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Aof {
    /// Opens generation `generation` for appending and starts the writer thread.
    pub fn open(dir: &Path, generation: u64, fsync: Fsync) -> std::io::Result<Arc<Aof>> {
        let (file, size) = open_log(dir, generation)?;
        let aof = Arc::new(Aof {
            fsync: std::sync::atomic::AtomicU8::new(fsync.index()),
            dir: dir.into(),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable: watch::channel(Progress::default()).0,
            file: Mutex::new(file),
            generation: AtomicU64::new(generation),
            size: AtomicU64::new(size),
            write_ok: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let me = aof.clone();
        let t = std::thread::Builder::new().name("ferrite-aof".into()).spawn(move || me.writer_loop())?;
        *aof.thread.lock() = Some(t);
        Ok(aof)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Frames a record for the log; returns its sequence number.
    pub fn append(&self, rec: &Record) -> u64 {
        self.tail().append_with(|buf| rec.frame_unsealed(buf))
    }

    /// Starts copying every record appended from now on; false if a copy
    /// is already being taken (one move at a time).
    pub fn start_tap(&self) -> bool {
        let mut p = self.pending.lock();
        if p.tap.is_some() {
            return false;
        }
        p.tap = Some(Vec::new());
        true
    }

    /// The records appended since the last call (unsealed frames).
    pub fn drain_tap(&self) -> Vec<u8> {
        self.pending.lock().tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Bytes the tap holds (what a move has yet to send).
    pub fn tap_len(&self) -> usize {
        self.pending.lock().tap.as_ref().map_or(0, |t| t.len())
    }

    pub fn stop_tap(&self) {
        self.pending.lock().tap = None;
    }

    /// Holds the log's tail: until the [`Tail`] is dropped, no other record
    /// can be appended.
    pub fn tail(&self) -> Tail<'_> {
        // Not reentrant: a handler that logged by itself while dispatch holds
        // the tail for it would deadlock. Debug builds (every test) say so.
        #[cfg(debug_assertions)]
        HOLDING_TAIL.with(|h| assert!(!h.replace(true), "the log's tail is already held by this thread"));
        Tail { aof: self, pending: self.pending.lock(), appended: false }
    }

    pub fn fsync(&self) -> Fsync {
        Fsync::ALL[self.fsync.load(Relaxed) as usize]
    }

    /// Switches the `appendfsync` policy (`CONFIG SET appendfsync`); the
    /// writer applies it from its next round.
    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f.index(), Relaxed);
        self.wake.notify_one();
    }

    /// Whether a reply must wait for [`Aof::durable`] before it is sent.
    pub fn acks_after_fsync(&self) -> bool {
        self.fsync() == Fsync::Always
    }

    /// Resolves to true once record `seq` is as durable as the policy
    /// promises, or to false when a write or fsync fails first: then nobody
    /// can say whether it will be (the writer keeps retrying), and the
    /// caller must not acknowledge it.
    pub fn durable(&self, seq: u64) -> impl std::future::Future<Output = bool> + use<> {
        let mut rx = self.durable.subscribe();
        let failures = rx.borrow().failures;
        async move {
            match rx.wait_for(|p| p.durable >= seq || p.failures > failures).await {
                Ok(p) => p.durable >= seq,
                Err(_) => false,
            }
        }
    }

    /// Swaps the file the log writes to, for tests that need a failing disk
    /// (`/dev/full`); returns the one it replaced.
    #[doc(hidden)]
    pub fn swap_file_for_tests(&self, file: File) -> File {
        std::mem::replace(&mut *self.file.lock(), file)
    }

    /// The `MISCONF` error for a write refused while the log cannot be written.
    pub fn write_error(&self) -> String {
        format!("MISCONF Errors writing to the AOF file: {}", self.last_error.lock())
    }

    fn failed(&self, what: &str, e: &std::io::Error) {
        if self.write_ok.swap(false, Relaxed) {
            tracing::error!("{what} the append-only log failed: {e}; write commands are refused until it succeeds again");
        }
        // Like strerror(3), without Rust's " (os error N)".
        let text = e.to_string();
        *self.last_error.lock() = text.split(" (os error").next().unwrap_or(&text).to_string();
        self.durable.send_modify(|p| p.failures += 1);
    }

    /// Compaction's cut: what is buffered now belongs to the current file,
    /// everything appended later to the next generation, which is returned.
    /// One compaction runs at a time and waits for the switch before it
    /// ends, so a rotation is never still pending here.
    pub fn rotate(&self) -> u64 {
        let mut p = self.pending.lock();
        debug_assert!(p.rotation.is_none(), "one rotation at a time");
        let next = self.generation.load(Relaxed) + 1;
        let before = std::mem::take(&mut p.buf);
        p.rotation = Some((before, next));
        drop(p);
        self.wake.notify_one();
        next
    }

    /// Writes whole sealed frames. On failure the file is cut back to where
    /// it was, so a retry cannot leave half a frame in the middle of the log.
    fn write_out(&self, bytes: &mut [u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        seal(bytes);
        let mut f = self.file.lock();
        match f.write_all(bytes) {
            Ok(()) => {
                self.size.fetch_add(bytes.len() as u64, Relaxed);
                true
            }
            Err(e) => {
                let _ = f.set_len(self.size.load(Relaxed));
                drop(f);
                self.failed("writing", &e);
                false
            }
        }
    }

    fn sync(&self) -> bool {
        let r = self.file.lock().sync_data();
        r.map_err(|e| self.failed("fsync of", &e)).is_ok()
    }

    /// Finishes the current file (written and fsynced) and opens the next.
    fn switch_to(&self, next: u64) -> bool {
        if !self.sync() {
            return false;
        }
        match open_log(&self.dir, next) {
            Ok((file, size)) => {
                *self.file.lock() = file;
                self.generation.store(next, Relaxed);
                self.size.store(size, Relaxed);
                true
            }
            Err(e) => {
                self.failed(&format!("opening generation {next} of"), &e);
                false
            }
        }
    }

    /// Writes `unwritten` (what failed before, then what is new); on success
    /// hands the buffer back for reuse.
    fn flush(&self, unwritten: &mut Vec<u8>) -> bool {
        if !self.write_out(unwritten) {
            return false;
        }
        self.recycle(std::mem::take(unwritten));
        true
    }

    fn writer_loop(&self) {
        let mut last_sync = Instant::now();
        // Bytes a failed write left, kept in order ahead of later ones.
        let mut unwritten: Vec<u8> = Vec::new();
        // A rotation that could not finish yet: the generation it starts, and
        // the bytes that belong to that generation meanwhile.
        let mut switching: Option<u64> = None;
        let mut held: Vec<u8> = Vec::new();
        let mut last_take = Instant::now();
        loop {
            let failing = !unwritten.is_empty() || switching.is_some() || !self.write_ok.load(Relaxed);
            let (bytes, seq, rotation, stopping) = {
                let mut p = self.pending.lock();
                let idle = p.rotation.is_none() && !self.stop.load(Relaxed);
                if failing {
                    self.wake.wait_for(&mut p, Duration::from_millis(RETRY_MS));
                } else if idle && self.fsync() != Fsync::Always {
                    // One write per interval, however busy: under load the
                    // buffer would otherwise be taken as soon as it holds
                    // anything, and the writer would contend for the tail
                    // with the command path and compete for a core with it,
                    // one small write at a time.
                    let interval = Duration::from_millis(WRITE_INTERVAL_MS);
                    let wait = if p.buf.is_empty() { interval } else { interval.saturating_sub(last_take.elapsed()) };
                    if !wait.is_zero() {
                        self.wake.wait_for(&mut p, wait);
                    }
                } else if idle && p.buf.is_empty() {
                    self.wake.wait_for(&mut p, Duration::from_millis(WRITE_INTERVAL_MS));
                }
                last_take = Instant::now();
                (std::mem::take(&mut p.buf), p.seq, p.rotation.take(), self.stop.load(Relaxed))
            };
            if let Some((before, next)) = rotation {
                append(&mut unwritten, before);
                switching = Some(next);
            }
            // The old generation must be complete before the next one starts.
            if let Some(next) = switching {
                if !(self.flush(&mut unwritten) && self.switch_to(next)) {
                    append(&mut held, bytes);
                    if stopping {
                        return self.lost_at_exit(unwritten.len() + held.len());
                    }
                    continue;
                }
                switching = None;
                unwritten = std::mem::take(&mut held);
            }
            let had = !bytes.is_empty() || !unwritten.is_empty();
            append(&mut unwritten, bytes);
            let wrote = had && self.flush(&mut unwritten);
            if had && !wrote {
                if stopping {
                    return self.lost_at_exit(unwritten.len());
                }
                continue;
            }
            // After a failed fsync with nothing new to write (writes are
            // refused meanwhile), a successful fsync is what recovers.
            let recovering = !self.write_ok.load(Relaxed);
            let sync_due = recovering
                || match self.fsync() {
                    Fsync::Always => wrote,
                    Fsync::Everysec => last_sync.elapsed() >= Duration::from_secs(1),
                    Fsync::No => false,
                };
            let synced = if sync_due || stopping {
                last_sync = Instant::now();
                self.sync()
            } else {
                true
            };
            if synced {
                if wrote || recovering {
                    self.write_ok.store(true, Relaxed);
                }
                self.durable.send_modify(|p| p.durable = p.durable.max(seq));
            }
            if stopping && self.pending.lock().buf.is_empty() {
                return;
            }
        }
    }

    /// Stopping with the disk still failing: what could not be written is
    /// lost (under `always` it was never acknowledged); say so loudly.
    fn lost_at_exit(&self, bytes: usize) {
        tracing::error!(bytes, "exiting with the end of the log unwritten: {}", self.write_error());
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        // A burst's huge buffer goes back to the allocator.
        if buf.capacity() <= 16 << 20 {
            buf.clear();
            let mut p = self.pending.lock();
            if p.spare.capacity() < buf.capacity() {
                p.spare = buf;
            }
        }
    }

    /// Bytes framed and not yet handed to the writer (Redis's
    /// `aof_buffer_length`).
    pub fn buffered(&self) -> usize {
        self.pending.lock().buf.len()
    }

    /// Appended records not yet known to be written (for "changes since save").
    pub fn seq(&self) -> u64 {
        self.pending.lock().seq
    }

    /// Writes and fsyncs everything appended so far and stops the thread.
    pub fn close(&self) {
        self.stop.store(true, Relaxed);
        self.wake.notify_one();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::Frames;

    fn cmd(i: u8) -> Record {
        Record::Command { now_ms: 1, space: None, db: 0, argv: vec![b"SET".to_vec(), vec![i]] }
    }

    fn records(dir: &Path, generation: u64) -> Vec<Record> {
        let path = aof_path(dir, generation);
        let data = std::fs::read(&path).unwrap();
        let mut frames = Frames::new(&path, &data, AOF_MAGIC).unwrap();
        let mut back = Vec::new();
        while let Some(r) = frames.next_record().unwrap() {
            back.push(r);
        }
        back
    }

    fn empty_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrite-aof-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn full_disk() -> File {
        OpenOptions::new().write(true).open("/dev/full").unwrap()
    }

    #[test]
    fn a_rotation_waits_for_the_disk_and_keeps_each_record_in_its_generation() {
        let dir = empty_dir("rotate");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let aof = Aof::open(&dir, 1, Fsync::Always).unwrap();
        let good = aof.swap_file_for_tests(full_disk());
        let old = aof.append(&cmd(1));
        assert!(!rt.block_on(aof.durable(old)));
        assert_eq!(aof.rotate(), 2);
        let new = aof.append(&cmd(2));
        assert!(!rt.block_on(aof.durable(new)));
        assert_eq!(aof.generation(), 1, "no switch before the old generation is complete");
        aof.swap_file_for_tests(good);
        assert!(rt.block_on(aof.durable(new)));
        assert_eq!(aof.generation(), 2);
        aof.close();
        assert_eq!(records(&dir, 1), [cmd(1)]);
        assert_eq!(records(&dir, 2), [cmd(2)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_is_retried_whole_and_nothing_is_acknowledged_meanwhile() {
        let dir = empty_dir("retry");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let aof = Aof::open(&dir, 1, Fsync::Always).unwrap();
        let first = aof.append(&cmd(1));
        assert!(rt.block_on(aof.durable(first)));
        // A full disk: every write fails with ENOSPC.
        let good = aof.swap_file_for_tests(full_disk());
        let second = aof.append(&cmd(2));
        assert!(!rt.block_on(aof.durable(second)), "a record that could not be written is not acknowledged");
        assert!(!aof.write_ok.load(Relaxed));
        assert_eq!(aof.write_error(), "MISCONF Errors writing to the AOF file: No space left on device");
        let third = aof.append(&cmd(3));
        // The disk recovers: the writer's retry writes what failed, then the rest.
        aof.swap_file_for_tests(good);
        assert!(rt.block_on(aof.durable(third)));
        assert!(aof.write_ok.load(Relaxed));
        aof.close();
        assert_eq!(records(&dir, 1), [cmd(1), cmd(2), cmd(3)], "each record once, in order");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
