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

/// Buffered records are written out at least this often (under `always`,
/// as soon as a connection waits). Short, so the buffer stays small and
/// warm in cache: it is handed back to the command path after each write.
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
        frame(&mut p.buf);
        p.seq += 1;
        self.appended = true;
        p.seq
    }
}

impl Drop for Tail<'_> {
    fn drop(&mut self) {
        if self.appended && self.aof.fsync == Fsync::Always {
            self.aof.wake.notify_one();
        }
    }
}

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
}

pub struct Aof {
    fsync: Fsync,
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<u64>,
    /// The generation being written (see `generation`).
    file: Mutex<File>,
    generation: AtomicU64,
    /// Bytes of the current file.
    pub size: AtomicU64,
    pub write_ok: AtomicBool,
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

/// Makes a directory's entries (new, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Aof {
    /// Opens generation `generation` for appending and starts the writer thread.
    pub fn open(dir: &Path, generation: u64, fsync: Fsync) -> std::io::Result<Arc<Aof>> {
        let (file, size) = open_log(dir, generation)?;
        let aof = Arc::new(Aof {
            fsync,
            dir: dir.into(),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable: watch::channel(0).0,
            file: Mutex::new(file),
            generation: AtomicU64::new(generation),
            size: AtomicU64::new(size),
            write_ok: AtomicBool::new(true),
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
        self.append_with(|buf| rec.frame_unsealed(buf))
    }

    /// Frames whatever `frame` appends; see [`Tail::append_with`].
    pub fn append_with(&self, frame: impl FnOnce(&mut Vec<u8>)) -> u64 {
        self.tail().append_with(frame)
    }

    /// Holds the log's tail: until the [`Tail`] is dropped, no other record
    /// can be appended.
    pub fn tail(&self) -> Tail<'_> {
        Tail { aof: self, pending: self.pending.lock(), appended: false }
    }

    /// Whether a reply must wait for [`Aof::durable`] before it is sent.
    pub fn acks_after_fsync(&self) -> bool {
        self.fsync == Fsync::Always
    }

    /// Resolves once record `seq` is as durable as the policy promises.
    pub fn durable(&self, seq: u64) -> impl std::future::Future<Output = ()> + use<> {
        let mut rx = self.durable.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d >= seq).await;
        }
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
                tracing::error!("writing the append-only log failed: {e}");
                self.write_ok.store(false, Relaxed);
                false
            }
        }
    }

    fn sync(&self) {
        if let Err(e) = self.file.lock().sync_data() {
            tracing::error!("fsync of the append-only log failed: {e}");
            self.write_ok.store(false, Relaxed);
        }
    }

    /// Finishes the current file (written and fsynced) and opens the next.
    fn switch_to(&self, next: u64) {
        self.sync();
        match open_log(&self.dir, next) {
            Ok((file, size)) => {
                *self.file.lock() = file;
                self.generation.store(next, Relaxed);
                self.size.store(size, Relaxed);
            }
            Err(e) => {
                tracing::error!("cannot open append-only log generation {next}: {e}");
                self.write_ok.store(false, Relaxed);
            }
        }
    }

    fn writer_loop(&self) {
        let mut last_sync = Instant::now();
        loop {
            let (mut bytes, seq, rotation, stopping) = {
                let mut p = self.pending.lock();
                if p.buf.is_empty() && p.rotation.is_none() && !self.stop.load(Relaxed) {
                    self.wake.wait_for(&mut p, Duration::from_millis(WRITE_INTERVAL_MS));
                }
                (std::mem::take(&mut p.buf), p.seq, p.rotation.take(), self.stop.load(Relaxed))
            };
            if let Some((mut before, next)) = rotation {
                self.write_out(&mut before);
                self.switch_to(next);
            }
            let wrote = !bytes.is_empty() && self.write_out(&mut bytes);
            self.recycle(bytes);

            let sync_due = match self.fsync {
                Fsync::Always => wrote,
                Fsync::Everysec => last_sync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
            if sync_due || stopping {
                self.sync();
                last_sync = Instant::now();
            }
            if self.write_ok.load(Relaxed) || self.fsync != Fsync::Always {
                self.durable.send_replace(seq);
            }
            if stopping && self.pending.lock().buf.is_empty() {
                return;
            }
        }
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
