//! CLIENT TRACKING: which of a space's clients cached which keys, and the
//! invalidation messages their changes send.
//!
//! As in Redis, the table is keyed by name only (not by database), a key
//! leaves it when it is invalidated, BCAST clients are told of every
//! change under their prefixes instead, and a flush invalidates everything.
//! Each space has its own table, so invalidations never cross tenants.
//! What the table holds is counted ([`Tracking::bytes`]) and bounded by
//! the caller's budget: past it, keys are dropped from it with an
//! invalidation, as Redis does past `tracking-table-max-keys`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use ahash::AHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::RwLock;
use smallvec::SmallVec;

use super::pubsub::{Delivery, Kind, Message, Subscriber, deliver};

/// The channel a RESP2 redirect target hears invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// What a tracked key costs besides its name: map entry and id list.
const KEY_OVERHEAD: usize = 64;
const ID_BYTES: usize = 8;

/// The options of CLIENT TRACKING ON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// A tracking client as CLIENT TRACKINGINFO shows it.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub mode: Mode,
    pub redirect: u64,
    pub broken: bool,
    pub prefixes: Vec<Vec<u8>>,
}

struct Tracker {
    info: Info,
    /// The client's own queue.
    own: Subscriber,
    /// REDIRECT's queue (its client may have gone since).
    target: Option<Subscriber>,
}

/// BCAST clients of one prefix, and the keys under it changed since the
/// last broadcast, each with the client that changed it last (NOLOOP).
#[derive(Default)]
struct Broadcast {
    clients: Vec<u64>,
    changed: BTreeMap<Vec<u8>, u64>,
}

#[derive(Default)]
struct Table {
    trackers: HashMap<u64, Tracker>,
    keys: AHashMap<Box<[u8]>, SmallVec<[u64; 2]>>,
    items: usize,
    prefixes: BTreeMap<Vec<u8>, Broadcast>,
}

/// A space's tracking state. With no client tracking, a write costs one
/// relaxed load ([`Tracking::active`]).
#[derive(Default)]
pub struct Tracking {
    clients: AtomicUsize,
    bytes: AtomicUsize,
    /// Keys changed under a BCAST prefix wait here until the end of the
    /// command (Redis sends them once per event-loop turn).
    pending: AtomicUsize,
    /// A bit per hash of every key in the table (cleared when it empties)
    /// and set for all when there are prefixes: a write of a key nobody
    /// cached costs a hash and a load, not the table's lock.
    filter: [AtomicU64; FILTER_WORDS],
    table: RwLock<Table>,
}

/// A change held until its command ends: whose table, the key, how to send.
type Held = (Arc<Tracking>, Box<[u8]>, Delivery);

/// What this thread's running commands have to do with tracking.
struct Local {
    /// The client whose command runs (0: none), for NOLOOP.
    writer: Cell<u64>,
    /// Commands running (nested: EXEC's and scripts' inside theirs).
    depth: Cell<u32>,
    /// Keys they changed, held until each command ends: a write that
    /// changed nothing after all (HDEL of a missing field) invalidates
    /// nothing, as in Redis.
    pending: RefCell<Vec<Held>>,
}

thread_local! {
    static LOCAL: Local = const { Local { writer: Cell::new(0), depth: Cell::new(0), pending: RefCell::new(Vec::new()) } };
}

/// Marks `id` as the client running a command on this thread until the
/// guard drops (then the previous one, for commands inside commands); the
/// keys it changes are invalidated then (see [`WriterGuard::finish`]).
pub fn writer(id: u64) -> WriterGuard {
    LOCAL.with(|l| {
        l.depth.set(l.depth.get() + 1);
        WriterGuard { previous: l.writer.replace(id), mark: l.pending.borrow().len(), changed: true }
    })
}

pub struct WriterGuard {
    previous: u64,
    mark: usize,
    changed: bool,
}

impl WriterGuard {
    /// Ends the command: `changed` false drops what it reported.
    pub fn finish(mut self, changed: bool) {
        self.changed = changed;
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        LOCAL.with(|l| {
            if l.pending.borrow().len() > self.mark {
                let held = l.pending.borrow_mut().split_off(self.mark);
                if self.changed {
                    for (tracking, key, how) in held {
                        tracking.invalidate(&key, how);
                    }
                }
            }
            l.writer.set(self.previous);
            l.depth.set(l.depth.get() - 1);
        });
    }
}

/// A key's bit in [`Tracking::filter`].
fn filter_bit(key: &[u8]) -> (usize, u64) {
    let h = FILTER_HASH.hash_one(key);
    (((h >> 6) as usize) % FILTER_WORDS, 1 << (h & 63))
}

const FILTER_WORDS: usize = 16;
static FILTER_HASH: ahash::RandomState = ahash::RandomState::with_seeds(0x5eed, 0xfe77, 0x17e, 0xcace);

/// Two prefixes overlap when one starts with the other.
fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// RESP array of `keys`, as the invalidation's payload.
fn key_array<'a>(n: usize, keys: impl Iterator<Item = &'a [u8]>) -> Arc<[u8]> {
    let mut v = Vec::with_capacity(16 + n * 16);
    v.extend_from_slice(format!("*{n}\r\n").as_bytes());
    for k in keys {
        v.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
        v.extend_from_slice(k);
        v.extend_from_slice(b"\r\n");
    }
    v.into()
}

/// What remembering `key` (or a BCAST prefix) costs the table.
pub fn key_cost(key: &[u8]) -> usize {
    key.len() + KEY_OVERHEAD
}

impl Tracker {
    /// Sends an invalidation (`payload` empty: everything) to the client,
    /// or to its redirect target; a target that has gone is reported once
    /// per message to the client itself, as Redis does.
    fn send(&mut self, payload: &Arc<[u8]>, how: Delivery) {
        let empty: Arc<[u8]> = Arc::from(&b""[..]);
        let message = |kind, payload: Arc<[u8]>| Message { kind, pattern: None, channel: empty.clone(), payload };
        match &self.target {
            Some(t) if t.tx.is_closed() => {
                self.info.broken = true;
                let id: Arc<[u8]> = Arc::from(self.info.redirect.to_string().as_bytes());
                deliver(&self.own, message(Kind::RedirectBroken, id), how);
            }
            Some(t) => {
                deliver(t, message(Kind::Invalidate, payload.clone()), how);
            }
            None => {
                deliver(&self.own, message(Kind::Invalidate, payload.clone()), how);
            }
        }
    }
}

impl Tracking {
    /// True when some client of the space tracks keys.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.clients.load(Relaxed) > 0
    }

    /// Bytes the table holds (keys, ids, prefixes).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// (tracking clients, keys, items, prefixes), for INFO.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        if !self.active() {
            return (0, 0, 0, 0);
        }
        let t = self.table.read();
        (t.trackers.len(), t.keys.len(), t.items, t.prefixes.len())
    }

    /// The client's tracking, if on.
    pub fn info(&self, id: u64) -> Option<Info> {
        if !self.active() {
            return None;
        }
        self.table.read().trackers.get(&id).map(|t| t.info.clone())
    }

    /// CLIENT TRACKING ON's checks against the client's current tracking,
    /// with Redis's errors; prefixes are checked for overlaps.
    pub fn check(&self, id: u64, mode: Mode, prefixes: &[&[u8]]) -> Result<(), String> {
        let current = self.info(id);
        if let Some(cur) = &current
            && cur.mode.bcast != mode.bcast
        {
            return Err("You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
        if mode.bcast && (mode.optin || mode.optout) {
            return Err("OPTIN and OPTOUT are not compatible with BCAST".into());
        }
        if mode.optin && mode.optout {
            return Err("You can't specify both OPTIN mode and OPTOUT mode".into());
        }
        if let Some(cur) = &current
            && ((mode.optin && cur.mode.optout) || (mode.optout && cur.mode.optin))
        {
            return Err("You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
        }
        if mode.bcast {
            let existing = current.map(|c| c.prefixes).unwrap_or_default();
            for (i, p) in prefixes.iter().enumerate() {
                if let Some(e) = existing.iter().find(|e| overlaps(e, p)) {
                    return Err(format!(
                        "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                        String::from_utf8_lossy(p),
                        String::from_utf8_lossy(e)
                    ));
                }
                if let Some(q) = prefixes[i + 1..].iter().find(|q| overlaps(p, q)) {
                    return Err(format!(
                        "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                        String::from_utf8_lossy(p),
                        String::from_utf8_lossy(q)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Turns tracking on (or changes its options; BCAST prefixes add up,
    /// as in Redis). `own` is the client's queue, `target` REDIRECT's.
    pub fn enable(&self, own: Subscriber, redirect: Option<Subscriber>, mode: Mode, prefixes: &[&[u8]]) {
        let id = own.id;
        let mut t = self.table.write();
        let fresh = !t.trackers.contains_key(&id);
        let tracker = t.trackers.entry(id).or_insert_with(|| Tracker { info: Info::default(), own, target: None });
        let kept = std::mem::take(&mut tracker.info.prefixes);
        tracker.info = Info { mode, redirect: redirect.as_ref().map_or(0, |r| r.id), broken: false, prefixes: kept };
        tracker.target = redirect;
        let mut added = Vec::new();
        if mode.bcast {
            let wanted: Vec<&[u8]> = if prefixes.is_empty() { vec![&b""[..]] } else { prefixes.to_vec() };
            for p in wanted {
                if !tracker.info.prefixes.iter().any(|e| e == p) {
                    tracker.info.prefixes.push(p.to_vec());
                    added.push(p.to_vec());
                }
            }
            tracker.info.prefixes.sort();
        }
        for p in added {
            self.bytes.fetch_add(key_cost(&p), Relaxed);
            t.prefixes.entry(p).or_default().clients.push(id);
        }
        if !t.prefixes.is_empty() {
            // Any key may fall under a prefix.
            self.filter.iter().for_each(|w| w.store(u64::MAX, Relaxed));
        }
        if fresh {
            self.clients.fetch_add(1, Relaxed);
        }
    }

    /// Turns the client's tracking off (CLIENT TRACKING OFF, RESET, a
    /// disconnect, leaving the space). Keys it read stay in the table
    /// until invalidated, as in Redis, but send it nothing more.
    pub fn disable(&self, id: u64) {
        if !self.active() {
            return;
        }
        let mut t = self.table.write();
        let Some(tracker) = t.trackers.remove(&id) else { return };
        let had_prefixes = !t.prefixes.is_empty();
        for p in &tracker.info.prefixes {
            if let Some(b) = t.prefixes.get_mut(p) {
                b.clients.retain(|c| *c != id);
                if b.clients.is_empty() {
                    let b = t.prefixes.remove(p).expect("present");
                    let changed: usize = b.changed.keys().map(|k| key_cost(k)).sum();
                    self.pending.fetch_sub(b.changed.len(), Relaxed);
                    self.bytes.fetch_sub(key_cost(p) + changed, Relaxed);
                }
            }
        }
        self.clients.fetch_sub(1, Relaxed);
        if t.trackers.is_empty() {
            // Nobody is left to tell: the table's keys go.
            self.clear_keys(&mut t);
        } else if had_prefixes && t.prefixes.is_empty() {
            self.rebuild_filter(&t);
        }
    }

    fn clear_keys(&self, t: &mut Table) {
        let freed: usize = t.keys.keys().map(|k| key_cost(k)).sum::<usize>() + t.items * ID_BYTES;
        t.keys = AHashMap::new();
        t.items = 0;
        self.bytes.fetch_sub(freed, Relaxed);
        self.rebuild_filter(t);
    }

    /// The filter again from the table (under its write lock): all set
    /// with prefixes, else the bits of its keys.
    fn rebuild_filter(&self, t: &Table) {
        let all = if t.prefixes.is_empty() { 0 } else { u64::MAX };
        self.filter.iter().for_each(|w| w.store(all, Relaxed));
        if all == 0 {
            for k in t.keys.keys() {
                let (word, bit) = filter_bit(k);
                self.filter[word].fetch_or(bit, Relaxed);
            }
        }
    }

    /// Remembers that client `id` read `keys` (it caches them now). Past
    /// `max_keys` keys or `max_bytes` bytes, other keys leave the table
    /// with an invalidation to those who cached them.
    pub fn remember<'a>(&self, id: u64, keys: impl Iterator<Item = &'a [u8]>, max_keys: usize, max_bytes: usize, how: Delivery) {
        let mut t = self.table.write();
        for key in keys {
            let (word, bit) = filter_bit(key);
            self.filter[word].fetch_or(bit, Relaxed);
            let ids = match t.keys.get_mut(key) {
                Some(ids) => ids,
                None => {
                    self.bytes.fetch_add(key_cost(key), Relaxed);
                    t.keys.entry(key.into()).or_default()
                }
            };
            if !ids.contains(&id) {
                ids.push(id);
                t.items += 1;
                self.bytes.fetch_add(ID_BYTES, Relaxed);
            }
        }
        self.limit(&mut t, max_keys.max(1), max_bytes, how);
    }

    /// Drops keys (with their invalidations) until the table is within
    /// its bounds; every call removes at least what `remember` added.
    fn limit(&self, t: &mut Table, max_keys: usize, max_bytes: usize, how: Delivery) {
        while t.keys.len() > max_keys || (self.bytes() > max_bytes && !t.keys.is_empty()) {
            let Some(victim) = t.keys.keys().next().cloned() else { return };
            self.invalidate_tracked(t, &victim, 0, how);
        }
    }

    /// A key changed (written, expired, evicted): inside a command, at its
    /// end (see [`writer`]); otherwise (the active expiry) now.
    pub fn modified(self: &Arc<Self>, key: &[u8], how: Delivery) {
        if !self.active() || !self.concerns(key) {
            return;
        }
        let held = LOCAL.with(|l| {
            let inside = l.depth.get() > 0;
            if inside {
                l.pending.borrow_mut().push((self.clone(), key.into(), how));
            }
            inside
        });
        if !held {
            self.invalidate(key, how);
        }
    }

    /// Whether a change to `key` is anyone's business: someone cached it,
    /// or it falls under a BCAST prefix (a shared lock, so writers of other
    /// keys do not queue behind each other).
    fn concerns(&self, key: &[u8]) -> bool {
        let (word, bit) = filter_bit(key);
        if self.filter[word].load(Relaxed) & bit == 0 {
            return false;
        }
        let t = self.table.read();
        t.keys.contains_key(key) || t.prefixes.keys().any(|p| key.starts_with(p))
    }

    /// The clients that cached `key` are told, and BCAST prefixes it falls
    /// under remember it.
    fn invalidate(&self, key: &[u8], how: Delivery) {
        let writer = LOCAL.with(|l| l.writer.get());
        let mut t = self.table.write();
        if !t.prefixes.is_empty() {
            let mut added = 0;
            for (p, b) in t.prefixes.iter_mut() {
                if key.starts_with(p) && b.changed.insert(key.to_vec(), writer).is_none() {
                    added += 1;
                    self.bytes.fetch_add(key_cost(key), Relaxed);
                }
            }
            self.pending.fetch_add(added, Relaxed);
        }
        self.invalidate_tracked(&mut t, key, writer, how);
    }

    fn invalidate_tracked(&self, t: &mut Table, key: &[u8], writer: u64, how: Delivery) {
        let Some(ids) = t.keys.remove(key) else { return };
        t.items -= ids.len();
        self.bytes.fetch_sub(key_cost(key) + ids.len() * ID_BYTES, Relaxed);
        let payload = key_array(1, std::iter::once(key));
        for id in ids {
            let Some(tracker) = t.trackers.get_mut(&id) else { continue };
            // A client that switched to BCAST is no longer told of keys it
            // read before; NOLOOP clients are not told of their own writes.
            if tracker.info.mode.bcast || (tracker.info.mode.noloop && id == writer) {
                continue;
            }
            tracker.send(&payload, how);
        }
    }

    /// Sends what BCAST clients are owed: per prefix, one message with the
    /// keys changed under it (for a NOLOOP client, less its own changes).
    pub fn broadcast(&self, how: Delivery) {
        if self.pending.load(Relaxed) == 0 {
            return;
        }
        let mut t = self.table.write();
        let Table { trackers, prefixes, .. } = &mut *t;
        let mut freed = 0;
        for b in prefixes.values_mut() {
            if b.changed.is_empty() {
                continue;
            }
            let all = key_array(b.changed.len(), b.changed.keys().map(|k| k.as_slice()));
            for id in &b.clients {
                let Some(tracker) = trackers.get_mut(id) else { continue };
                if tracker.info.mode.noloop {
                    let others: Vec<&[u8]> = b.changed.iter().filter(|(_, w)| *w != id).map(|(k, _)| k.as_slice()).collect();
                    if !others.is_empty() {
                        tracker.send(&key_array(others.len(), others.into_iter()), how);
                    }
                } else {
                    tracker.send(&all, how);
                }
            }
            freed += b.changed.keys().map(|k| key_cost(k)).sum::<usize>();
            self.pending.fetch_sub(b.changed.len(), Relaxed);
            b.changed.clear();
        }
        self.bytes.fetch_sub(freed, Relaxed);
    }

    /// FLUSHDB/FLUSHALL: every tracking client is told that everything is
    /// invalid (a null), and the table empties.
    pub fn flushed(&self, how: Delivery) {
        if !self.active() {
            return;
        }
        let mut t = self.table.write();
        let everything: Arc<[u8]> = Arc::from(&b""[..]);
        for tracker in t.trackers.values_mut() {
            tracker.send(&everything, how);
        }
        self.clear_keys(&mut t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClassLimit;
    use crate::space::pubsub::{MessageReceiver, new_channel};

    fn how() -> Delivery {
        Delivery { limit: ClassLimit { hard: 0, soft: 0, soft_secs: 0 }, now_ms: 0 }
    }

    fn client(id: u64) -> (Subscriber, MessageReceiver) {
        let (tx, rx) = new_channel();
        (Subscriber { id, tx, kill: Arc::new(|| {}) }, rx)
    }

    fn payloads(rx: &mut MessageReceiver) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv()).map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect()
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_leaves_the_table() {
        let tr = Arc::new(Tracking::default());
        let (a, mut rx) = client(1);
        tr.enable(a, None, Mode::default(), &[]);
        tr.remember(1, [&b"k"[..]].into_iter(), 100, usize::MAX, how());
        assert!(tr.bytes() > 0);
        tr.modified(b"k", how());
        tr.modified(b"k", how());
        assert_eq!(payloads(&mut rx), vec!["*1\r\n$1\r\nk\r\n"]);
        assert_eq!(tr.counts(), (1, 0, 0, 0));
        tr.disable(1);
        assert_eq!(tr.bytes(), 0);
    }

    #[test]
    fn noloop_skips_the_writers_own_changes() {
        let tr = Arc::new(Tracking::default());
        let (a, mut rx) = client(7);
        tr.enable(a, None, Mode { noloop: true, ..Mode::default() }, &[]);
        tr.remember(7, [&b"k"[..]].into_iter(), 100, usize::MAX, how());
        {
            let _w = writer(7);
            tr.modified(b"k", how());
        }
        assert!(payloads(&mut rx).is_empty());
    }

    #[test]
    fn bcast_collects_keys_under_its_prefixes_until_broadcast() {
        let tr = Arc::new(Tracking::default());
        let (a, mut rx) = client(1);
        let mode = Mode { bcast: true, ..Mode::default() };
        assert!(tr.check(1, mode, &[b"ab", b"a"]).is_err());
        tr.enable(a, None, mode, &[b"user:", b"job:"]);
        assert!(tr.check(1, mode, &[b"user"]).unwrap_err().contains("overlaps with an existing prefix 'user:'"));
        for k in [&b"user:2"[..], b"user:1", b"other", b"job:9", b"user:1"] {
            tr.modified(k, how());
        }
        tr.broadcast(how());
        let mut got = payloads(&mut rx);
        got.sort();
        assert_eq!(got, vec!["*1\r\n$5\r\njob:9\r\n", "*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"]);
        tr.broadcast(how());
        assert!(payloads(&mut rx).is_empty());
        tr.disable(1);
        assert_eq!(tr.bytes(), 0);
    }

    #[test]
    fn the_table_stays_within_its_bounds() {
        let tr = Arc::new(Tracking::default());
        let (a, mut rx) = client(1);
        tr.enable(a, None, Mode::default(), &[]);
        let keys: Vec<Vec<u8>> = (0..50).map(|i| format!("key:{i}").into_bytes()).collect();
        tr.remember(1, keys.iter().map(|k| k.as_slice()), 10, usize::MAX, how());
        assert_eq!(tr.counts().1, 10);
        assert_eq!(payloads(&mut rx).len(), 40);
        tr.remember(1, keys.iter().map(|k| k.as_slice()), 1000, 5 * (KEY_OVERHEAD + 6 + ID_BYTES), how());
        assert!(tr.bytes() <= 5 * (KEY_OVERHEAD + 6 + ID_BYTES), "{}", tr.bytes());
    }

    #[test]
    fn a_gone_redirect_target_is_reported_to_the_client() {
        let tr = Arc::new(Tracking::default());
        let (a, mut rx) = client(1);
        let (b, rx_b) = client(2);
        tr.enable(a, Some(b), Mode::default(), &[]);
        drop(rx_b);
        tr.flushed(how());
        let m = rx.try_recv().expect("a message");
        assert_eq!((m.kind, &m.payload[..]), (Kind::RedirectBroken, &b"2"[..]));
        assert!(tr.info(1).unwrap().broken);
    }
}
