//! One database: a lock-striped hash table with expiry, access metadata,
//! exact byte accounting, sampling and cursor scans.
//!
//! The table is a `DashMap` used through its raw shard API, so that a lookup
//! hashes the key once, an update of an existing key allocates nothing, and
//! sampling and SCAN can address buckets directly. All access goes through
//! [`Keyspace::read`] and [`Keyspace::write`]; `write` is the single place
//! where the byte total, the key count, the volatile-key count and WATCH
//! invalidation are maintained, so no command can forget them.
//!
//! Invariants:
//! - `used` equals the sum of [`entry_mem`] over all entries;
//! - an expired entry is never returned (it is deleted on sight);
//! - an empty collection is never stored;
//! - keyspace calls never nest (a closure must not call back into the same
//!   keyspace), so shard locks are never held twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use ferrite_policy_abi::Writer;

use dashmap::{DashMap, SharedValue};
use hashbrown::raw::{Bucket, RawTable};
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::clock::{LFU_INIT, LRU_MAX, idle_secs, lfu_decay, lfu_incr, lru_clock};
use super::glob;
use super::value::{Hasher, Value, ValueType};

/// A key: up to 16 bytes inline, longer ones on the heap.
pub type Key = SmallVec<[u8; 16]>;

/// What a table slot holds: one pointer to the entry, which carries its own
/// key. An 8-byte slot keeps the table small even when hashbrown's
/// power-of-two growth leaves it half empty (as it does at one million keys).
#[derive(Debug)]
pub struct Node(Box<Entry>);

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.key.as_slice().hash(h)
    }
}

impl PartialEq for Node {
    fn eq(&self, o: &Node) -> bool {
        self.0.key == o.0.key
    }
}

impl Eq for Node {}

type Item = (Node, SharedValue<()>);
type Table = RawTable<Item>;

/// Fixed cost of one entry: its table slot, the entry's allocation and metadata.
pub const ENTRY_OVERHEAD: usize = 80;

/// A stored value with its key, expiry and access metadata.
#[derive(Debug)]
pub struct Entry {
    key: Key,
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 means none.
    expire_at: u64,
    /// Redis-style access stamp: 24-bit LRU clock (seconds) << 8 | LFU counter.
    access: AtomicU32,
    /// The snapshot epoch this entry was last written out in (or created
    /// during): see [`Keyspace::begin_snapshot`]. Fits in padding.
    saved: AtomicU8,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            key: self.key.clone(),
            value: self.value.clone(),
            expire_at: self.expire_at,
            access: AtomicU32::new(self.access.load(Relaxed)),
            saved: AtomicU8::new(0),
        }
    }
}

impl Entry {
    pub fn new(value: Value, now_ms: u64) -> Entry {
        Entry {
            key: Key::new(),
            value,
            expire_at: 0,
            access: AtomicU32::new(lru_clock(now_ms) << 8 | LFU_INIT as u32),
            saved: AtomicU8::new(0),
        }
    }

    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    pub fn set_expire(&mut self, at: Option<u64>) {
        self.expire_at = at.unwrap_or(0);
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && now_ms > self.expire_at
    }

    /// Seconds since the last access.
    pub fn idle_secs(&self, now_ms: u64) -> u64 {
        idle_secs(self.access.load(Relaxed) >> 8, now_ms)
    }

    /// The LFU counter, decayed for the time since the last access.
    pub fn lfu(&self, now_ms: u64) -> u8 {
        let a = self.access.load(Relaxed);
        lfu_decay(a as u8, idle_secs(a >> 8, now_ms), 1)
    }

    /// Sets the access metadata RESTORE carries, as Redis does: under an
    /// LFU policy the counter (`freq`), otherwise a last access `idle_secs`
    /// ago (with Redis's fallback when that is before the LRU clock began).
    pub fn set_access(&self, now_ms: u64, lfu: bool, idle_secs: Option<u64>, freq: Option<u8>) {
        let now = lru_clock(now_ms);
        let counter = self.access.load(Relaxed) as u8;
        let access = match (lfu, idle_secs, freq) {
            (true, _, Some(f)) => now << 8 | f as u32,
            (false, Some(idle), _) => {
                // Redis scales the idle time to milliseconds and back in 64
                // bits, wrapping: a huge IDLETIME comes out as Redis's does.
                let idle = (idle as i64).wrapping_mul(1000) / 1000;
                let mut stamp = (now as i64).wrapping_sub(idle);
                if stamp < 0 {
                    stamp = (now as i64 + (LRU_MAX / 2) as i64) % LRU_MAX as i64;
                }
                // The stamp keeps its low 24 bits, as Redis's field does.
                (stamp as u32) << 8 | counter as u32
            }
            _ => return,
        };
        self.access.store(access, Relaxed);
    }

    /// Records an access: relaxed, racing updates only lose a stamp.
    pub fn touch(&self, now_ms: u64) {
        let counter = lfu_incr(self.lfu(now_ms));
        self.access.store(lru_clock(now_ms) << 8 | counter as u32, Relaxed);
    }
}

/// Bytes an entry accounts for.
pub fn entry_mem(e: &Entry) -> usize {
    ENTRY_OVERHEAD + if e.key.spilled() { e.key.len() } else { 0 } + e.value.mem()
}

/// The entry a live bucket points to.
///
/// # Safety
/// `b` must be a full bucket of a table the caller has locked for as long as
/// the reference is used.
unsafe fn entry_of<'t>(b: &Bucket<Item>) -> &'t Entry {
    unsafe { &b.as_ref().0.0 }
}

/// What eviction and RANDOMKEY learn about a sampled key: with its key
/// owned, or (`Sample<&[u8]>`, from [`Keyspace::sample_each`]) borrowed.
#[derive(Debug, Clone)]
pub struct Sample<K = Vec<u8>> {
    pub key: K,
    pub kind: ValueType,
    pub bytes: usize,
    pub idle_secs: u64,
    pub lfu: u8,
    pub expire_at: Option<u64>,
}

/// What a keyspace reports of the changes it sees itself: a key created
/// (absent, or removed, before a write; present after it) and a key
/// removed because it expired (lazily, on access, or by the active cycle).
/// The layer that owns the keyspace installs one (`Keyspace::observed`) to
/// publish keyspace events; the keyspace knows nothing of who listens, and
/// reports only after its shard lock is released.
pub trait Observer: Send + Sync {
    /// Whether reports of `change` are wanted now (asked before the active
    /// cycle collects the keys it removes, so an unwatched sweep copies none).
    fn wants(&self, change: Change) -> bool;
    fn report(&self, change: Change, key: &[u8], now_ms: u64);
}

/// A change a keyspace reports to its [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Expired,
    /// Any change to the key (written, expired, evicted, deleted): what
    /// Redis calls `signalModifiedKey`.
    Modified,
}

pub struct Keyspace {
    map: DashMap<Node, (), Hasher>,
    used: AtomicI64,
    keys: AtomicI64,
    volatile: AtomicI64,
    expired: AtomicU64,
    sweep: Mutex<(usize, usize)>,
    watched: AtomicUsize,
    watchers: Mutex<HashMap<Vec<u8>, Vec<Arc<AtomicBool>>>>,
    total: Option<Arc<AtomicI64>>,
    snap: Snap,
    observer: Option<Arc<dyn Observer>>,
}

/// A point-in-time copy in progress: the copy-on-write state.
#[derive(Default)]
struct Snap {
    active: AtomicBool,
    epoch: AtomicU8,
    cut_ms: AtomicU64,
    /// Pre-images of entries writers changed before the snapshot pass
    /// reached them.
    preserved: Mutex<Preserved>,
    /// Tables a flush swapped out while a snapshot ran: the snapshot encodes
    /// what in them it has not written yet, then frees them. The lock also
    /// orders a flush against the snapshot's end (see `clear`).
    retired: Mutex<Vec<Table>>,
}

/// What writers kept for a snapshot: small entries encoded, big collections
/// as clones that share their storage (encoding those would stall the
/// writer, and every client of its thread, for as long as the encoding).
#[derive(Default)]
struct Preserved {
    encoded: Writer,
    count: u64,
    shared: Vec<Entry>,
}

impl Preserved {
    fn clear(&mut self) {
        *self = Preserved::default();
    }
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

/// Write access to one key's place in the table, held under its shard lock.
pub struct Slot<'a> {
    table: &'a mut Table,
    hasher: &'a Hasher,
    hash: u64,
    key: &'a [u8],
    bucket: Option<Bucket<Item>>,
    now_ms: u64,
    dirty: bool,
    /// The entry there before the write was removed (it may have been
    /// replaced since): a key present afterwards is a new one, as Redis's
    /// delete-then-add (RENAME onto an existing key) makes one.
    removed: bool,
}

impl Slot<'_> {
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn entry(&self) -> Option<&Entry> {
        // SAFETY: the bucket came from `table`, which we borrow mutably, and
        // is dropped from `self.bucket` whenever it is erased.
        self.bucket.as_ref().map(|b| unsafe { entry_of(b) })
    }

    pub fn value(&self) -> Option<&Value> {
        self.entry().map(|e| &e.value)
    }

    pub fn exists(&self) -> bool {
        self.bucket.is_some()
    }

    /// Mutable access; marks the key modified (for WATCH).
    pub fn entry_mut(&mut self) -> Option<&mut Entry> {
        self.dirty = true;
        // SAFETY: as in `entry`.
        self.bucket.as_ref().map(|b| unsafe { &mut *b.as_mut().0.0 })
    }

    pub fn value_mut(&mut self) -> Option<&mut Value> {
        self.entry_mut().map(|e| &mut e.value)
    }

    /// Stores `value` with no expiry, replacing what was there.
    pub fn set(&mut self, value: Value) -> Option<Entry> {
        let e = Entry::new(value, self.now_ms);
        self.put(e)
    }

    /// Stores a whole entry (value, expiry, access), replacing what was there.
    pub fn put(&mut self, mut entry: Entry) -> Option<Entry> {
        self.dirty = true;
        if let Some(cur) = self.entry_mut() {
            entry.key = std::mem::take(&mut cur.key);
            return Some(std::mem::replace(cur, entry));
        }
        let hasher = self.hasher;
        entry.key = Key::from_slice(self.key);
        let item = (Node(Box::new(entry)), SharedValue::new(()));
        self.bucket = Some(self.table.insert(self.hash, item, |(n, _)| hasher.hash_one(n.0.key.as_slice())));
        None
    }

    /// Gets the value, creating it with `make` if the key is absent.
    pub fn value_or_insert(&mut self, make: impl FnOnce() -> Value) -> &mut Value {
        if self.bucket.is_none() {
            self.set(make());
        }
        self.value_mut().expect("just inserted")
    }

    pub fn remove(&mut self) -> Option<Entry> {
        let b = self.bucket.take()?;
        self.dirty = true;
        // SAFETY: `b` is a live bucket of `table`.
        let ((n, _), _) = unsafe { self.table.remove(b) };
        self.removed = true;
        Some(*n.0)
    }
}

/// Below this many keys, freeing inline is cheaper than starting a thread.
const FREE_INLINE_KEYS: usize = 10_000;

/// Drops emptied tables (and every entry in them) off the caller's thread
/// when there are many.
fn free_in_background(tables: Vec<Table>, keys: usize) {
    if keys < FREE_INLINE_KEYS {
        return drop(tables);
    }
    let spawned = std::thread::Builder::new().name("ferrite-free".into()).spawn(move || drop(tables));
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to free a flushed keyspace ({e}); freed inline");
    }
}

impl Keyspace {
    pub fn new() -> Self {
        Self::with_total(None)
    }

    /// A keyspace that also adds its byte changes to a shared total (the
    /// server-wide figure `maxmemory` is checked against).
    pub fn with_total(total: Option<Arc<AtomicI64>>) -> Self {
        Keyspace {
            total,
            map: DashMap::with_hasher_and_shard_amount(Hasher::new(), 64),
            used: AtomicI64::new(0),
            keys: AtomicI64::new(0),
            volatile: AtomicI64::new(0),
            expired: AtomicU64::new(0),
            sweep: Mutex::new((0, 0)),
            watched: AtomicUsize::new(0),
            watchers: Mutex::new(HashMap::new()),
            snap: Snap::default(),
            observer: None,
        }
    }

    /// The same keyspace, reporting creations and expiries to `observer`.
    pub fn observed(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    #[inline(always)]
    fn report_modified(&self, key: &[u8], now_ms: u64) {
        if let Some(o) = &self.observer
            && o.wants(Change::Modified)
        {
            o.report(Change::Modified, key, now_ms);
        }
    }

    /// Tells the observer (if any) of `change` to `key`; called with no
    /// shard lock held.
    fn report(&self, change: Change, key: &[u8], now_ms: u64) {
        if let Some(o) = &self.observer {
            o.report(change, key, now_ms);
        }
    }

    pub fn len(&self) -> usize {
        self.keys.load(Relaxed).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exact bytes held, by [`entry_mem`].
    pub fn used_bytes(&self) -> usize {
        self.used.load(Relaxed).max(0) as usize
    }

    /// Keys with an expiry set.
    pub fn volatile_len(&self) -> usize {
        self.volatile.load(Relaxed).max(0) as usize
    }

    /// Keys removed because they expired (lazily or by the active cycle).
    pub fn expired_count(&self) -> u64 {
        self.expired.load(Relaxed)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.map.hasher().hash_one(key)
    }

    /// Makes room for `additional` more keys at once (a tenant's copy
    /// arriving), instead of doubling each shard's table as they come.
    pub fn reserve(&self, additional: usize) {
        let hasher = self.map.hasher();
        let per_shard = additional / self.map.shards().len() + 1;
        for shard in self.map.shards() {
            shard.write().reserve(per_shard, |(n, _)| hasher.hash_one(n.0.key.as_slice()));
        }
    }

    fn shard(&self, hash: u64) -> &dashmap::RwLock<Table> {
        &self.map.shards()[self.map.determine_shard(hash as usize)]
    }

    /// Reads a live key. `touch` records the access (LRU/LFU); an expired key
    /// is deleted and reads as absent.
    pub fn read<R>(&self, key: &[u8], now_ms: u64, touch: bool, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        {
            let table = shard.read();
            let bucket = table.find(hash, |(n, _)| n.0.key.as_slice() == key)?;
            // SAFETY: the bucket is live while `table`'s read guard is held.
            let entry = unsafe { entry_of(&bucket) };
            if !entry.is_expired(now_ms) {
                if touch {
                    entry.touch(now_ms);
                }
                return Some(f(entry));
            }
        }
        self.write(key, now_ms, |_| ());
        None
    }

    /// The bytes a live key accounts for (MEMORY USAGE).
    pub fn sample_one(&self, key: &[u8], now_ms: u64) -> Option<usize> {
        let hash = self.hash(key);
        let table = self.shard(hash).read();
        let b = table.find(hash, |(n, _)| n.0.key.as_slice() == key)?;
        // SAFETY: live bucket under the read guard.
        let e = unsafe { entry_of(&b) };
        (!e.is_expired(now_ms)).then(|| entry_mem(e))
    }

    /// Whether a live key exists, without touching it.
    pub fn contains(&self, key: &[u8], now_ms: u64) -> bool {
        self.read(key, now_ms, false, |_| ()).is_some()
    }

    /// Write access to `key`'s slot. Accounting, expiry bookkeeping, removal
    /// of emptied collections and WATCH invalidation happen here, after `f`.
    pub fn write<R>(&self, key: &[u8], now_ms: u64, f: impl FnOnce(&mut Slot) -> R) -> R {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let mut table = shard.write();
        let bucket = table.find(hash, |(n, _)| n.0.key.as_slice() == key);
        let mut slot = Slot { table: &mut table, hasher: self.map.hasher(), hash, key, bucket, now_ms, dirty: false, removed: false };
        if let Some(e) = slot.entry() {
            self.preserve(e);
        }
        let mut expired = false;
        if slot.entry().is_some_and(|e| e.is_expired(now_ms)) {
            expired = true;
        }
        let before = self.footprint(&slot);
        if expired {
            slot.remove();
            slot.dirty = false;
            self.expired.fetch_add(1, Relaxed);
        }
        let mut changed = expired;
        let r = f(&mut slot);
        if slot.value().is_some_and(|v| v.is_empty_collection()) {
            slot.remove();
        }
        changed |= slot.dirty;
        if let Some(e) = slot.entry() {
            self.mark_current(e);
        }
        let after = self.footprint(&slot);
        let created = after.1 == 1 && (before.1 == 0 || slot.removed);
        drop(table);
        self.account(before, after);
        if changed {
            self.touch_watched(key);
            self.report_modified(key, now_ms);
        }
        if expired {
            self.report(Change::Expired, key, now_ms);
        }
        if created {
            self.report(Change::Created, key, now_ms);
        }
        r
    }

    /// (bytes, exists, volatile) of a slot, for accounting.
    fn footprint(&self, slot: &Slot) -> (i64, i64, i64) {
        match slot.bucket.as_ref() {
            // SAFETY: live bucket of the locked table.
            Some(b) => unsafe {
                let e = entry_of(b);
                (entry_mem(e) as i64, 1, e.expire_at().is_some() as i64)
            },
            None => (0, 0, 0),
        }
    }

    fn account(&self, before: (i64, i64, i64), after: (i64, i64, i64)) {
        if before.0 != after.0 {
            self.used.fetch_add(after.0 - before.0, Relaxed);
            if let Some(total) = &self.total {
                total.fetch_add(after.0 - before.0, Relaxed);
            }
        }
        if before.1 != after.1 {
            self.keys.fetch_add(after.1 - before.1, Relaxed);
        }
        if before.2 != after.2 {
            self.volatile.fetch_add(after.2 - before.2, Relaxed);
        }
    }

    pub fn remove(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.write(key, now_ms, |s| s.remove())
    }

    pub fn put(&self, key: &[u8], entry: Entry, now_ms: u64) -> Option<Entry> {
        self.write(key, now_ms, |s| s.put(entry))
    }

    /// Removes every key; returns how many there were.
    ///
    /// The tables are swapped for empty ones under all the shard locks at
    /// once (so the running totals are exactly what they held). A big
    /// keyspace is then freed on a thread of its own: a tenant's FLUSHALL of
    /// millions of keys costs the worker thread, and every other tenant on
    /// it, about as much as a few keys (Redis's FLUSHALL ASYNC, always).
    /// While a snapshot runs, the old tables go to it instead: it still has
    /// to write what they held at its cut.
    pub fn clear(&self) -> usize {
        let n = self.len();
        self.invalidate_all_watched();
        // Taken first: a snapshot ends (stops being active) under this lock,
        // so tables retired here are always seen by the snapshot that needs them.
        let mut retired = self.snap.retired.lock();
        let mut guards: Vec<_> = self.map.shards().iter().map(|s| s.write()).collect();
        let held = (self.used.load(Relaxed), self.keys.load(Relaxed), self.volatile.load(Relaxed));
        let tables: Vec<Table> = guards.iter_mut().map(|t| std::mem::replace(&mut **t, Table::new())).collect();
        self.account(held, (0, 0, 0));
        drop(guards);
        if self.snap.active.load(std::sync::atomic::Ordering::SeqCst) {
            retired.extend(tables);
        } else {
            drop(retired);
            free_in_background(tables, n);
        }
        n
    }

    /// Visits live entries bucket by bucket from `cursor`, until about
    /// `count` were seen. Returns the next cursor (0 when done).
    ///
    /// The cursor is `shard << 32 | bucket`. A key present for the whole scan
    /// is returned at least once unless a table grows meanwhile.
    pub fn scan(&self, cursor: u64, count: usize, now_ms: u64, mut f: impl FnMut(&[u8], &Entry)) -> u64 {
        let shards = self.map.shards();
        let (mut si, mut bi) = ((cursor >> 32) as usize, (cursor & 0xffff_ffff) as usize);
        let mut seen = 0;
        while si < shards.len() {
            let t = shards[si].read();
            while bi < t.buckets() {
                // SAFETY: index < buckets(); checked full before use.
                unsafe {
                    if t.is_bucket_full(bi) {
                        let e = entry_of(&t.bucket(bi));
                        if !e.is_expired(now_ms) {
                            f(&e.key, e);
                            seen += 1;
                        }
                    }
                }
                bi += 1;
                if seen >= count.max(1) {
                    return if bi < t.buckets() { (si as u64) << 32 | bi as u64 } else { next_shard(si, shards.len()) };
                }
            }
            si += 1;
            bi = 0;
        }
        0
    }

    /// Live keys matching a glob pattern.
    pub fn keys(&self, pattern: &[u8], now_ms: u64) -> Vec<Vec<u8>> {
        let all = pattern == b"*";
        let mut out = Vec::new();
        for shard in self.map.shards() {
            let t = shard.read();
            // SAFETY: iterating under the read guard.
            for b in unsafe { t.iter() } {
                let e = unsafe { entry_of(&b) };
                if !e.is_expired(now_ms) && (all || glob::matches(pattern, &e.key, false)) {
                    out.push(e.key.to_vec());
                }
            }
        }
        out
    }

    /// Up to `n` random live entries (with repeats possible), by random bucket
    /// probing; what RANDOMKEY and eviction sampling use. Like Redis's
    /// `dictGetSomeKeys`, a probe takes the live entries that follow its random
    /// start in the same table (hash order is random order): neighbouring
    /// buckets share cache lines, where one probe per entry cost a cache miss
    /// on the bucket array each.
    pub fn sample(&self, n: usize, now_ms: u64, volatile_only: bool) -> Vec<Sample> {
        let mut out = Vec::with_capacity(n);
        self.sample_each(n, now_ms, volatile_only, |s| {
            out.push(Sample {
                key: s.key.to_vec(),
                kind: s.kind,
                bytes: s.bytes,
                idle_secs: s.idle_secs,
                lfu: s.lfu,
                expire_at: s.expire_at,
            })
        });
        out
    }

    /// [`Keyspace::sample`], lending each sample (key borrowed, under its
    /// shard's read lock) to `f`: eviction copies only the keys that make
    /// its pool.
    pub fn sample_each(&self, n: usize, now_ms: u64, volatile_only: bool, mut f: impl FnMut(Sample<&[u8]>)) {
        if self.is_empty() || (volatile_only && self.volatile_len() == 0) {
            return;
        }
        let shards = self.map.shards();
        let (mut taken, mut tries) = (0, 0);
        let mut si = fastrand::usize(..shards.len());
        while taken < n && tries < n * 16 + shards.len() {
            tries += 1;
            si = (si + 1) % shards.len();
            let t = shards[si].read();
            if t.is_empty() {
                continue;
            }
            let start = fastrand::usize(..t.buckets());
            for off in 0..t.buckets() {
                let i = (start + off) % t.buckets();
                // SAFETY: index < buckets(), checked full before use.
                unsafe {
                    if !t.is_bucket_full(i) {
                        continue;
                    }
                    let e = entry_of(&t.bucket(i));
                    if e.is_expired(now_ms) || (volatile_only && e.expire_at().is_none()) {
                        continue;
                    }
                    f(Sample {
                        key: &e.key,
                        kind: e.value.kind(),
                        bytes: entry_mem(e),
                        idle_secs: e.idle_secs(now_ms),
                        lfu: e.lfu(now_ms),
                        expire_at: e.expire_at(),
                    });
                    taken += 1;
                    if taken == n {
                        break;
                    }
                }
            }
        }
    }

    /// One step of the active expiry cycle: sweeps up to `budget` buckets,
    /// deleting expired keys. Returns (buckets visited, keys deleted).
    pub fn expire_step(&self, now_ms: u64, budget: usize) -> (usize, usize) {
        if self.volatile_len() == 0 {
            return (0, 0);
        }
        let shards = self.map.shards();
        let mut pos = self.sweep.lock();
        let (mut visited, mut deleted) = (0, 0);
        let mut removed_keys = Vec::new();
        let report = self.observer.as_ref().is_some_and(|o| o.wants(Change::Expired));
        let modified = self.observer.as_ref().is_some_and(|o| o.wants(Change::Modified));
        while visited < budget {
            let (si, bi) = *pos;
            let mut t = shards[si].write();
            let end = (bi + budget - visited).min(t.buckets());
            let mut freed = (0i64, 0i64, 0i64);
            for i in bi..end {
                // SAFETY: index < buckets(); erasing leaves other buckets in place.
                unsafe {
                    if t.is_bucket_full(i) {
                        let b = t.bucket(i);
                        if entry_of(&b).is_expired(now_ms) {
                            self.preserve(entry_of(&b));
                            let ((n, _), _) = t.remove(b);
                            let k = &n.0.key;
                            freed.0 += entry_mem(&n.0) as i64;
                            freed.1 += 1;
                            freed.2 += 1;
                            if report || modified || self.watched.load(Relaxed) > 0 {
                                removed_keys.push(k.to_vec());
                            }
                        }
                    }
                }
            }
            // A cursor past the end (never expected: tables do not shrink) just moves on.
            visited += end.saturating_sub(bi).max(1);
            *pos = if end >= t.buckets() { ((si + 1) % shards.len(), 0) } else { (si, end) };
            drop(t);
            deleted += freed.1 as usize;
            self.account(freed, (0, 0, 0));
            if pos.0 == 0 && pos.1 == 0 {
                break;
            }
        }
        drop(pos);
        self.expired.fetch_add(deleted as u64, Relaxed);
        for k in removed_keys {
            self.touch_watched(&k);
            self.report_modified(&k, now_ms);
            if report {
                self.report(Change::Expired, &k, now_ms);
            }
        }
        (visited, deleted)
    }

    /// Registers a WATCH flag: set when `key` is next modified.
    pub fn watch(&self, key: &[u8], flag: Arc<AtomicBool>) {
        self.watchers.lock().entry(key.to_vec()).or_default().push(flag);
        self.watched.fetch_add(1, Relaxed);
    }

    pub fn unwatch(&self, key: &[u8], flag: &Arc<AtomicBool>) {
        let mut w = self.watchers.lock();
        if let Some(list) = w.get_mut(key) {
            let before = list.len();
            list.retain(|f| !Arc::ptr_eq(f, flag));
            self.watched.fetch_sub(before - list.len(), Relaxed);
            if list.is_empty() {
                w.remove(key);
            }
        }
    }

    fn touch_watched(&self, key: &[u8]) {
        if self.watched.load(Relaxed) == 0 {
            return;
        }
        if let Some(list) = self.watchers.lock().get(key) {
            list.iter().for_each(|f| f.store(true, Relaxed));
        }
    }

    /// SWAPDB: flags this keyspace's watchers of keys that exist here or in
    /// `other` (either way the key's value changes under them), as Redis does.
    pub fn touch_watched_swapped(&self, other: &Keyspace, now_ms: u64) {
        if self.watched.load(Relaxed) == 0 {
            return;
        }
        // Keys first: a shard's lock is never taken under the watchers' lock.
        let keys: Vec<Vec<u8>> = self.watchers.lock().keys().cloned().collect();
        for k in keys.iter().filter(|k| self.contains(k, now_ms) || other.contains(k, now_ms)) {
            self.touch_watched(k);
        }
    }

    fn invalidate_all_watched(&self) {
        if self.watched.load(Relaxed) == 0 {
            return;
        }
        for flags in self.watchers.lock().values() {
            flags.iter().for_each(|f| f.store(true, Relaxed));
        }
    }
}

fn next_shard(si: usize, n: usize) -> u64 {
    if si + 1 < n { ((si + 1) as u64) << 32 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_follows_writes_deletes_and_expiry() {
        let ks = Keyspace::new();
        ks.write(b"a", 1000, |s| s.set(Value::string(&[b'x'; 100])));
        ks.write(b"b", 1000, |s| s.set(Value::string(b"small")));
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.used_bytes(), 2 * ENTRY_OVERHEAD + 100);
        ks.write(b"a", 1000, |s| s.entry_mut().unwrap().set_expire(Some(2000)));
        assert_eq!(ks.volatile_len(), 1);
        assert!(ks.contains(b"a", 2000));
        assert!(!ks.contains(b"a", 2001));
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.used_bytes(), ENTRY_OVERHEAD);
        assert_eq!(ks.expired_count(), 1);
        ks.remove(b"b", 3000);
        assert_eq!((ks.len(), ks.used_bytes(), ks.volatile_len()), (0, 0, 0));
    }

    #[test]
    fn restored_access_metadata_is_redis_s() {
        let now = 1_000_000_000; // LRU clock 1,000,000 s
        let e = Entry::new(Value::string(b"v"), now);
        e.set_access(now, false, Some(1000), Some(9));
        assert_eq!(e.idle_secs(now), 1000);
        // Past the clock's start: half the clock's range ahead, as Redis.
        e.set_access(now, false, Some(100_000_000), None);
        assert_eq!(e.idle_secs(now), (LRU_MAX - (1_000_000 + LRU_MAX / 2)) as u64 + 1_000_000);
        // A huge IDLETIME wraps in Redis's arithmetic to one second ahead.
        e.set_access(now, false, Some(i64::MAX as u64), None);
        assert_eq!(e.idle_secs(now), LRU_MAX as u64 - 1);
        e.set_access(now, true, Some(50), Some(77));
        assert_eq!((e.idle_secs(now), e.lfu(now)), (0, 77));
        e.set_access(now, true, Some(50), None);
        assert_eq!(e.lfu(now), 77);
    }

    #[test]
    fn clear_empties_every_table_and_every_total() {
        let total = Arc::new(AtomicI64::new(0));
        let ks = Keyspace::with_total(Some(total.clone()));
        // Past FREE_INLINE_KEYS, so the tables are freed on another thread.
        for i in 0..FREE_INLINE_KEYS + 5 {
            ks.write(format!("k{i}").as_bytes(), 0, |s| {
                s.set(Value::string(b"v"));
                if i % 2 == 0 {
                    s.entry_mut().unwrap().set_expire(Some(1 << 40));
                }
            });
        }
        assert_eq!(ks.clear(), FREE_INLINE_KEYS + 5);
        assert_eq!((ks.len(), ks.used_bytes(), ks.volatile_len(), total.load(Relaxed)), (0, 0, 0, 0));
        assert!(!ks.contains(b"k1", 0));
        ks.write(b"again", 0, |s| s.set(Value::string(b"v")));
        assert_eq!((ks.len(), ks.used_bytes() as i64), (1, total.load(Relaxed)));
    }

    #[test]
    fn active_expiry_reclaims_unread_keys() {
        let ks = Keyspace::new();
        for i in 0..1000 {
            ks.write(format!("k{i}").as_bytes(), 0, |s| {
                s.set(Value::string(b"v"));
                s.entry_mut().unwrap().set_expire(Some(10));
            });
        }
        ks.write(b"keep", 0, |s| s.set(Value::string(b"v")));
        let mut total = 0;
        for _ in 0..1000 {
            total += ks.expire_step(100, 64).1;
        }
        assert_eq!(total, 1000);
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.used_bytes(), ENTRY_OVERHEAD);
    }

    #[test]
    fn scan_visits_every_key_once_without_writes() {
        let ks = Keyspace::new();
        for i in 0..5000 {
            ks.write(format!("key:{i}").as_bytes(), 0, |s| s.set(Value::string(b"v")));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = ks.scan(cursor, 10, 0, |k, _| assert!(seen.insert(k.to_vec())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 5000);
    }

    #[test]
    fn watch_flags_on_modification() {
        let ks = Keyspace::new();
        let flag = Arc::new(AtomicBool::new(false));
        ks.watch(b"w", flag.clone());
        ks.read(b"w", 0, true, |_| ());
        assert!(!flag.load(Relaxed));
        ks.write(b"w", 0, |s| s.set(Value::string(b"1")));
        assert!(flag.load(Relaxed));
        ks.unwatch(b"w", &flag);
    }
}

/// Snapshots: a consistent copy of the keyspace as it was at a cut, taken
/// while writers go on. At the cut every entry is unmarked; a writer about
/// to change (or delete) an unmarked entry first encodes it ("preserves"
/// its pre-image) and marks it; the snapshot pass encodes and marks what is
/// still unmarked, shard by shard under each shard's read lock; entries
/// created after the cut are marked at birth and never written. So every
/// entry alive at the cut is written exactly once, as it was at the cut.
impl Keyspace {
    /// Starts a snapshot of the state as of now. The caller makes this the
    /// same instant for every keyspace (the server's exclusive lock).
    /// `epoch` must differ from the previous snapshot's and from 0.
    pub fn begin_snapshot(&self, epoch: u8, cut_ms: u64) {
        self.snap.epoch.store(epoch, Relaxed);
        self.snap.cut_ms.store(cut_ms, Relaxed);
        self.snap.active.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    #[inline]
    fn preserve(&self, e: &Entry) {
        if self.snap.active.load(Relaxed) {
            self.preserve_slow(e);
        }
    }

    #[cold]
    fn preserve_slow(&self, e: &Entry) {
        let epoch = self.snap.epoch.load(Relaxed);
        // Expired at the cut means absent at the cut: nothing to keep.
        if e.saved.swap(epoch, Relaxed) != epoch && !e.is_expired(self.snap.cut_ms.load(Relaxed)) {
            let mut p = self.snap.preserved.lock();
            if e.value.is_shared_on_clone() {
                p.shared.push(e.clone());
            } else {
                super::encode::encode_entry(&e.key, e, &mut p.encoded);
                p.count += 1;
            }
        }
    }

    #[inline]
    fn mark_current(&self, e: &Entry) {
        if self.snap.active.load(Relaxed) {
            e.saved.store(self.snap.epoch.load(Relaxed), Relaxed);
        }
    }

    /// Writes the keyspace as it was at the cut into `out` (entries in the
    /// format of [`super::encode`]), handing `out` to `flush` whenever it
    /// holds more than `chunk` bytes, then ends the snapshot. Returns the
    /// number of entries written. Each shard is read-locked only while its
    /// small entries are encoded: big collections are cloned (sharing their
    /// storage) under the lock and encoded after it.
    pub fn snapshot_into(
        &self,
        out: &mut Writer,
        chunk: usize,
        flush: &mut dyn FnMut(&mut Writer) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let epoch = self.snap.epoch.load(Relaxed);
        let cut = self.snap.cut_ms.load(Relaxed);
        let mut n = 0;
        let mut big = Vec::new();
        for shard in self.map.shards() {
            {
                let t = shard.read();
                // SAFETY: iterating a table we hold a read lock on.
                for b in unsafe { t.iter() } {
                    let e = unsafe { entry_of(&b) };
                    if e.saved.swap(epoch, Relaxed) != epoch && !e.is_expired(cut) {
                        if e.value.is_shared_on_clone() {
                            big.push(e.clone());
                        } else {
                            super::encode::encode_entry(&e.key, e, out);
                            n += 1;
                        }
                    }
                }
            }
            n += encode_all(big.drain(..), out);
            n += self.drain_preserved(out);
            if out.buf.len() > chunk {
                flush(out)?;
            }
        }
        // Writers now find every entry marked; stop marking, then take what
        // they preserved in the meantime, and what flushes retired.
        let retired = self.end_snapshot();
        n += self.drain_preserved(out);
        for t in &retired {
            // SAFETY: the tables are ours alone now.
            for b in unsafe { t.iter() } {
                let e = unsafe { entry_of(&b) };
                if e.saved.load(Relaxed) != epoch && !e.is_expired(cut) {
                    super::encode::encode_entry(&e.key, e, out);
                    n += 1;
                    if out.buf.len() > chunk {
                        flush(out)?;
                    }
                }
            }
        }
        Ok(n)
    }

    /// Stops marking and preserving; returns the tables flushes retired
    /// meanwhile (see `clear`).
    fn end_snapshot(&self) -> Vec<Table> {
        let mut retired = self.snap.retired.lock();
        self.snap.active.store(false, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut *retired)
    }

    /// Ends a snapshot that will not be written (it failed): writers stop
    /// preserving and what they preserved is dropped.
    pub fn abort_snapshot(&self) {
        drop(self.end_snapshot());
        self.snap.preserved.lock().clear();
    }

    /// Moves what writers preserved into `out`; big collections are encoded
    /// here, with no lock held.
    fn drain_preserved(&self, out: &mut Writer) -> u64 {
        let (count, shared) = {
            let mut p = self.snap.preserved.lock();
            out.buf.extend_from_slice(&p.encoded.buf);
            p.encoded.buf.clear();
            (std::mem::take(&mut p.count), std::mem::take(&mut p.shared))
        };
        count + encode_all(shared.into_iter(), out)
    }
}

fn encode_all(entries: impl Iterator<Item = Entry>, out: &mut Writer) -> u64 {
    entries.map(|e| super::encode::encode_entry(&e.key, &e, out)).count() as u64
}

#[cfg(test)]
mod snapshot_tests {
    use std::collections::BTreeMap;

    use ferrite_policy_abi::{Reader, Writer};

    use super::*;
    use crate::store::encode::decode_entry;

    fn get(ks: &Keyspace, k: &str) -> Option<Vec<u8>> {
        ks.read(k.as_bytes(), 0, false, |e| match &e.value {
            Value::Str(s, _) => s.to_vec(),
            _ => panic!("string"),
        })
    }

    fn set(ks: &Keyspace, k: &str, v: &str) {
        ks.write(k.as_bytes(), 0, |s| s.set(Value::string(v.as_bytes())));
    }

    fn decode_all(buf: &[u8]) -> BTreeMap<String, String> {
        let mut r = Reader::new(buf);
        let mut out = BTreeMap::new();
        while r.finish().is_err() {
            let d = decode_entry(&mut r).unwrap();
            let Value::Str(v, _) = d.value else { panic!("string") };
            assert!(
                out.insert(String::from_utf8(d.key.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()).is_none(),
                "written twice"
            );
        }
        out
    }

    /// k0..k999, each "old".
    fn thousand_old_keys() -> Keyspace {
        let ks = Keyspace::new();
        for i in 0..1000 {
            set(&ks, &format!("k{i}"), "old");
        }
        ks
    }

    #[test]
    fn a_snapshot_is_the_state_at_the_cut_whatever_writers_do_meanwhile() {
        let ks = thousand_old_keys();
        ks.begin_snapshot(1, 0);
        // After the cut: overwrite, delete, create, clear a few.
        for i in 0..300 {
            set(&ks, &format!("k{i}"), "new");
        }
        for i in 300..400 {
            ks.remove(format!("k{i}").as_bytes(), 0);
        }
        set(&ks, "born-after", "x");
        let mut out = Writer::default();
        let n = ks.snapshot_into(&mut out, usize::MAX, &mut |_| Ok(())).unwrap();
        let snap = decode_all(&out.buf);
        assert_eq!(n, 1000);
        assert_eq!(snap.len(), 1000);
        assert!(snap.values().all(|v| v == "old"));
        assert!(!snap.contains_key("born-after"));
        // The live keyspace has the new state, and the next snapshot sees it.
        assert_eq!(get(&ks, "k0").as_deref(), Some(b"new".as_slice()));
        ks.begin_snapshot(2, 0);
        ks.clear();
        let mut out = Writer::default();
        ks.snapshot_into(&mut out, usize::MAX, &mut |_| Ok(())).unwrap();
        let snap = decode_all(&out.buf);
        assert_eq!(snap.len(), 901);
        assert_eq!(snap["k0"], "new");
        assert_eq!(snap["k999"], "old");
    }

    #[test]
    fn a_flush_during_a_snapshot_hands_it_the_old_tables_and_nothing_outlives_it() {
        let ks = thousand_old_keys();
        ks.begin_snapshot(1, 0);
        set(&ks, "k1", "new");
        let mut out = Writer::default();
        // Half-way through the pass (one shard written), a FLUSHALL.
        let mut flushed = false;
        let n = ks
            .snapshot_into(&mut out, 0, &mut |_| {
                if !flushed {
                    flushed = true;
                    assert_eq!(ks.clear(), 1000);
                    set(&ks, "born-after", "x");
                }
                Ok(())
            })
            .unwrap();
        assert!(flushed);
        let snap = decode_all(&out.buf);
        assert_eq!((n, snap.len()), (1000, 1000));
        assert!(snap.values().all(|v| v == "old"));
        assert_eq!((ks.len(), get(&ks, "born-after").as_deref()), (1, Some(b"x".as_slice())));
        // The retired tables went with that snapshot, not into the next one.
        ks.begin_snapshot(2, 0);
        let mut out = Writer::default();
        ks.snapshot_into(&mut out, usize::MAX, &mut |_| Ok(())).unwrap();
        assert_eq!(decode_all(&out.buf).into_keys().collect::<Vec<_>>(), ["born-after"]);
    }

    /// Every type past its compact size, written after the cut by a writer
    /// (which keeps a shared clone) or not (the pass clones it).
    #[test]
    fn big_collections_are_written_as_they_were_at_the_cut() {
        use crate::store::value::{HashValue, ListValue, SetValue, ZSetValue};
        let ks = Keyspace::new();
        let n = 10_000;
        let (mut l, mut h, mut st, mut z) = (ListValue::default(), HashValue::default(), SetValue::default(), ZSetValue::default());
        for i in 0..n {
            let m = i.to_string();
            l.push(m.as_bytes(), false);
            h.insert(m.as_bytes(), b"v");
            st.insert(m.as_bytes());
            z.insert(m.as_bytes(), i as f64);
        }
        let values = [Value::List(Box::new(l)), Value::Hash(Box::new(h)), Value::Set(Box::new(st)), Value::ZSet(Box::new(z))];
        for (i, v) in values.iter().enumerate() {
            for prefix in ["written", "untouched"] {
                ks.write(format!("{prefix}{i}").as_bytes(), 0, |s| s.set(v.clone()));
            }
        }
        ks.begin_snapshot(1, 0);
        for i in 0..values.len() {
            ks.write(format!("written{i}").as_bytes(), 0, |s| match s.value_mut().unwrap() {
                Value::List(l) => drop(l.pop(true)),
                Value::Hash(h) => drop(h.remove(b"0")),
                Value::Set(st) => drop(st.remove(b"0")),
                Value::ZSet(z) => drop(z.remove(b"0")),
                Value::Str(..) | Value::Stream(_) => unreachable!(),
            });
        }
        // The writers kept shared clones, nothing encoded on their thread.
        let p = ks.snap.preserved.lock();
        assert_eq!((p.shared.len(), p.count), (values.len(), 0));
        drop(p);
        let mut out = Writer::default();
        assert_eq!(ks.snapshot_into(&mut out, usize::MAX, &mut |_| Ok(())).unwrap(), 8);
        let mut r = Reader::new(&out.buf);
        let mut seen = 0;
        while r.finish().is_err() {
            let d = decode_entry(&mut r).unwrap();
            let len = match &d.value {
                Value::List(l) => l.len(),
                Value::Hash(h) => h.len(),
                Value::Set(s) => s.len(),
                Value::ZSet(z) => z.len(),
                Value::Str(..) | Value::Stream(_) => unreachable!(),
            };
            assert_eq!(len, n, "{}", String::from_utf8_lossy(d.key));
            seen += 1;
        }
        assert_eq!(seen, 8);
        ks.read(b"written0", 0, false, |e| assert!(matches!(&e.value, Value::List(l) if l.len() == n - 1)));
    }

    #[test]
    fn entries_keep_their_size() {
        // The snapshot mark lives in padding: an entry is no bigger for it.
        assert_eq!(std::mem::size_of::<Entry>(), std::mem::size_of::<Key>() + std::mem::size_of::<Value>() + 16);
    }
}
