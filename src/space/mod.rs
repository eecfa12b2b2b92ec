//! A namespace: numbered databases, pub/sub channels, keyspace events and
//! blocked clients.
//!
//! The global context is one `Space`; every tenant owns another. Whatever a
//! command can see or signal is reached through its client's space, so one
//! tenant's keys, channels, keyspace events and wake-ups cannot reach
//! another's. Databases are
//! created on first use, so an idle space costs a few hundred bytes.

pub mod blocking;
pub mod latency;
pub mod monitor;
pub mod notify;
pub mod pause;
pub mod pubsub;
pub mod slowlog;
pub mod tracking;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::Notify;

use crate::store::Keyspace;

pub use blocking::Blocking;
pub use pubsub::PubSub;

pub struct Space {
    /// The tenant this space belongs to (`None`: the global space); how the
    /// log names it.
    owner: Option<Box<str>>,
    dbs: Box<[OnceLock<Box<Keyspace>>]>,
    /// One past the highest physical keyspace created: the totals a
    /// tenant's every write is admitted on visit those alone (most spaces
    /// use database 0 only).
    created: AtomicUsize,
    /// Database `i` is `dbs[order[i]]`: SWAPDB swaps two entries (under the
    /// space's exclusive lock), so a swap moves no key. Registrations that
    /// must find their keyspace again (WATCH) keep the physical index.
    order: Arc<[AtomicUsize]>,
    total: Option<Arc<AtomicI64>>,
    pub pubsub: Arc<PubSub>,
    /// Which keyspace events this space publishes (see `notify`).
    pub events: Arc<notify::Events>,
    pub blocking: Blocking,
    /// CLIENT TRACKING: who cached which keys.
    pub tracking: Arc<tracking::Tracking>,
    /// MONITOR: the clients watching this space's commands (the global
    /// space's: the admin's, watching all).
    pub monitors: monitor::Monitors,
    /// CLIENT PAUSE of this space's clients.
    pub pause: pause::Pause,
    /// Lua scripts: this space's own state and cache.
    pub scripts: crate::script::Scripts,
    /// SLOWLOG: the slow commands of this space's own connections.
    pub slowlog: slowlog::Slowlog,
    /// LATENCY: the latency events of this space's own connections.
    pub latency: latency::Latency,
    /// This space's execution lock: single-key commands hold it shared;
    /// multi-key commands, flushes and EXEC exclusively, which makes them
    /// atomic within the space. Spaces never wait for each other's.
    pub exec_lock: RwLock<()>,
    /// Held by a write from before it changes anything until its record is
    /// framed, so writes of one space reach the log in the order they were
    /// made (replay is per space: other spaces' records may interleave).
    pub write_order: Mutex<()>,
    /// Long commands of this space running on the blocking pool; while any
    /// runs, the space's other connections wait (asynchronously) instead of
    /// blocking a worker thread on `exec_lock`.
    offloaded: AtomicUsize,
    idle: Notify,
}

impl Space {
    pub fn new(databases: usize) -> Space {
        Self::with_total(databases, None, Arc::default())
    }

    /// A space whose databases add their bytes to a shared total, and whose
    /// keyspace events follow the server's `defaults` until it has its own.
    pub fn with_total(databases: usize, total: Option<Arc<AtomicI64>>, defaults: Arc<notify::Defaults>) -> Space {
        Space {
            owner: None,
            dbs: (0..databases).map(|_| OnceLock::new()).collect(),
            created: AtomicUsize::new(0),
            order: (0..databases).map(AtomicUsize::new).collect(),
            total,
            pubsub: Arc::default(),
            events: Arc::new(notify::Events::new(defaults)),
            blocking: Blocking::default(),
            tracking: Arc::default(),
            pause: pause::Pause::default(),
            monitors: monitor::Monitors::default(),
            scripts: crate::script::Scripts::default(),
            slowlog: slowlog::Slowlog::default(),
            latency: latency::Latency::default(),
            exec_lock: RwLock::new(()),
            write_order: Mutex::new(()),
            offloaded: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// True while a long command of this space runs off the event loop,
    /// or a script of it has run long.
    pub fn busy(&self) -> bool {
        self.offloaded.load(Relaxed) > 0 || self.scripts.long_running()
    }

    /// Wakes the connections waiting for the space to be idle (a long
    /// script has ended).
    pub fn wake_waiters(&self) {
        self.idle.notify_waiters();
    }

    /// The execution lock, exclusively. A holder may run long (a script,
    /// until it marks the space busy); past a moment's wait this worker's
    /// queue goes to another thread while this one waits.
    pub fn lock_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        crate::worker::acquire(|t| self.exec_lock.try_write_for(t), || self.exec_lock.write())
    }

    /// The execution lock, shared (see [`Space::lock_exclusive`]).
    pub fn lock_shared(&self) -> RwLockReadGuard<'_, ()> {
        crate::worker::acquire(|t| self.exec_lock.try_read_for(t), || self.exec_lock.read())
    }

    /// Waits until no long command of this space runs.
    pub async fn until_idle(&self) {
        while self.busy() {
            let idle = self.idle.notified();
            if !self.busy() {
                return;
            }
            idle.await;
        }
    }

    /// Marks a long command as running until the guard drops.
    pub fn offload(&self) -> Offloaded<'_> {
        self.offloaded.fetch_add(1, Relaxed);
        Offloaded(self)
    }

    /// The same space, as the namespace of tenant `id`.
    pub fn owned_by(mut self, id: &str) -> Space {
        self.owner = Some(id.into());
        self
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// How many databases this space may address.
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Database `i` (created on first use). Panics if `i` is out of range:
    /// callers validate indexes against [`Space::databases`].
    pub fn db(&self, i: usize) -> &Keyspace {
        self.physical_db(self.physical(i))
    }

    /// Where database `i` lives now (see `order`).
    pub fn physical(&self, i: usize) -> usize {
        self.order[i].load(Relaxed)
    }

    /// The keyspace at physical index `p` (created on first use).
    pub fn physical_db(&self, p: usize) -> &Keyspace {
        self.dbs[p].get_or_init(|| {
            self.created.fetch_max(p + 1, Relaxed);
            let observer = notify::KeyspaceObserver {
                physical: p,
                order: self.order.clone(),
                pubsub: self.pubsub.clone(),
                events: self.events.clone(),
                tracking: self.tracking.clone(),
            };
            Box::new(Keyspace::with_total(self.total.clone()).observed(Arc::new(observer)))
        })
    }

    /// Publishes keyspace event `event` of `class` (`notify`'s classes) on
    /// `key` of logical database `db`, if this space selects it and anyone
    /// listens.
    #[inline(always)]
    pub fn notify(&self, db: usize, class: u32, event: &str, key: &[u8], now_ms: u64) {
        self.events.emit(&self.pubsub, db, class, event, key, now_ms);
    }

    /// SWAPDB: databases `a` and `b` trade contents. The caller holds the
    /// space's lock exclusively, so no command sees a half-made swap.
    pub fn swap(&self, a: usize, b: usize) {
        let (pa, pb) = (self.physical(a), self.physical(b));
        self.order[a].store(pb, Relaxed);
        self.order[b].store(pa, Relaxed);
    }

    /// Removes every key of every database (FLUSHALL, TENANT.DELETE).
    pub fn clear(&self) {
        self.existing().for_each(|(_, ks)| {
            ks.clear();
        });
    }

    /// The databases that exist, with their indexes.
    pub fn existing(&self) -> impl Iterator<Item = (usize, &Keyspace)> {
        (0..self.dbs.len()).filter_map(|i| self.dbs[self.physical(i)].get().map(|k| (i, &**k)))
    }

    /// The keyspaces that exist, in no particular order: for totals.
    fn created(&self) -> impl Iterator<Item = &Keyspace> {
        self.dbs[..self.created.load(Relaxed)].iter().filter_map(|d| d.get().map(|k| &**k))
    }

    pub fn used_bytes(&self) -> usize {
        self.created().map(|d| d.used_bytes()).sum()
    }

    pub fn keys(&self) -> usize {
        self.created().map(|d| d.len()).sum()
    }

    /// [`Space::used_bytes`] and [`Space::keys`] in one pass.
    pub fn usage(&self) -> (usize, usize) {
        self.created().fold((0, 0), |(bytes, keys), d| (bytes + d.used_bytes(), keys + d.len()))
    }
}

/// A long command of a space in flight (see [`Space::offload`]).
pub struct Offloaded<'a>(&'a Space);

impl Drop for Offloaded<'_> {
    fn drop(&mut self) {
        self.0.offloaded.fetch_sub(1, Relaxed);
        self.0.idle.notify_waiters();
    }
}
