//! Counters that many threads bump at once without sharing a cache line.
//!
//! Each thread adds to its own padded slot with a relaxed atomic; readers sum
//! the slots. This keeps statistics off the hot path's critical section.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

const SLOTS: usize = 8;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Relaxed) % SLOTS;
}

fn slot() -> usize {
    SLOT.with(|s| *s)
}

/// A sum of per-thread relaxed counters.
#[derive(Debug, Default)]
pub struct Counter {
    slots: [CachePadded<AtomicU64>; SLOTS],
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.slots[slot()].fetch_add(n, Relaxed);
    }

    pub fn incr(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Relaxed)).sum()
    }

    pub fn reset(&self) {
        self.slots.iter().for_each(|s| s.store(0, Relaxed));
    }
}

/// A command's latency buckets: below 1024 ns, then four per power of two
/// of nanoseconds (HDR-like, within 25%) up to about 68 s (everything
/// above is the last).
pub const BUCKETS: usize = 1 + POWERS * SUB;
const POWERS: usize = 26;
const SUB: usize = 4;
const FIRST_POW: u32 = 10;

/// The bucket of a duration.
fn bucket(ns: u64) -> usize {
    if ns < 1 << FIRST_POW {
        return 0;
    }
    let pow = 63 - ns.leading_zeros();
    let sub = ((ns >> (pow - 2)) & 3) as usize;
    (1 + ((pow - FIRST_POW) as usize) * SUB + sub).min(BUCKETS - 1)
}

/// The bound below which a bucket's durations are, in nanoseconds.
pub fn bucket_upper_ns(i: usize) -> u64 {
    if i == 0 {
        return 1 << FIRST_POW;
    }
    let (pow, sub) = (((i - 1) / SUB) as u32 + FIRST_POW, ((i - 1) % SUB) as u64);
    (1u64 << pow) + (sub + 1) * (1u64 << (pow - 2))
}

/// LATENCY HISTOGRAM's buckets, as Redis gives them: for each power of two
/// of nanoseconds from 1024, (its value in whole microseconds, the calls
/// that took less), where the count grew.
pub fn cumulative_usec(h: &[u64; BUCKETS]) -> Vec<(u64, u64)> {
    let (mut out, mut seen, mut last) = (Vec::new(), 0, 0);
    for (i, n) in h.iter().enumerate() {
        seen += n;
        // Bucket 0 ends at 1024 ns, bucket 4k at a power of two.
        if i % SUB == 0 && seen > last {
            out.push((bucket_upper_ns(i) / 1000, seen));
            last = seen;
        }
    }
    out
}

struct CallSlot {
    calls: AtomicU64,
    ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for CallSlot {
    fn default() -> Self {
        CallSlot { calls: AtomicU64::new(0), ns: AtomicU64::new(0), buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

/// Calls, time and latency buckets for one command, per thread.
#[derive(Default)]
pub struct CallCounter {
    slots: [CachePadded<CallSlot>; SLOTS],
}

impl std::fmt::Debug for CallCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallCounter{:?}", self.get())
    }
}

impl CallCounter {
    pub fn record(&self, ns: u64) {
        let s = &self.slots[slot()];
        s.calls.fetch_add(1, Relaxed);
        s.ns.fetch_add(ns, Relaxed);
        s.buckets[bucket(ns)].fetch_add(1, Relaxed);
    }

    /// (calls, usec)
    pub fn get(&self) -> (u64, u64) {
        let (calls, ns) = self.slots.iter().fold((0, 0), |(c, n), s| (c + s.calls.load(Relaxed), n + s.ns.load(Relaxed)));
        (calls, ns / 1000)
    }

    /// How many calls fell in each bucket.
    pub fn histogram(&self) -> [u64; BUCKETS] {
        let mut h = [0; BUCKETS];
        for s in &self.slots {
            for (sum, b) in h.iter_mut().zip(&s.buckets) {
                *sum += b.load(Relaxed);
            }
        }
        h
    }

    pub fn reset(&self) {
        for s in &self.slots {
            s.calls.store(0, Relaxed);
            s.ns.store(0, Relaxed);
            s.buckets.iter().for_each(|b| b.store(0, Relaxed));
        }
    }
}

/// The duration under which `fraction` of the calls in `h` fell: the
/// upper end of the bucket that reaches it, in microseconds.
pub fn percentile_usec(h: &[u64; BUCKETS], fraction: f64) -> f64 {
    let total: u64 = h.iter().sum();
    let wanted = ((total as f64) * fraction).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return bucket_upper_ns(i) as f64 / 1000.0;
        }
    }
    0.0
}

/// Error replies by kind (their first word: `ERR`, `WRONGTYPE`, ...), for
/// INFO errorstats. A script can make up kinds (`redis.error_reply`), so
/// past 128 of them new ones are not recorded (later Redis versions cap
/// them the same way).
#[derive(Debug, Default)]
pub struct ErrorKinds {
    kinds: parking_lot::Mutex<std::collections::BTreeMap<Box<str>, u64>>,
}

const MAX_ERROR_KINDS: usize = 128;

impl ErrorKinds {
    /// Counts an error reply (its text, with or without the leading `-`).
    pub fn count(&self, reply: &[u8]) {
        let text = reply.strip_prefix(b"-").unwrap_or(reply);
        let head = &text[..text.len().min(31)];
        let kind = match head.iter().position(|&b| b == b' ') {
            Some(n) if reply.first() == Some(&b'-') || n > 0 => &text[..n],
            _ => &b"ERR"[..],
        };
        // As INFO prints it: no field separators inside (Redis's getSafeInfoString).
        let kind: String = String::from_utf8_lossy(kind).chars().map(|c| if matches!(c, ':' | '\r' | '\n') { '_' } else { c }).collect();
        let mut kinds = self.kinds.lock();
        if let Some(n) = kinds.get_mut(kind.as_str()) {
            *n += 1;
        } else if kinds.len() < MAX_ERROR_KINDS {
            kinds.insert(kind.into(), 1);
        }
    }

    pub fn snapshot(&self) -> Vec<(Box<str>, u64)> {
        self.kinds.lock().iter().map(|(k, n)| (k.clone(), *n)).collect()
    }

    pub fn reset(&self) {
        self.kinds.lock().clear();
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn buckets_hold_what_they_say() {
        for ns in [0, 500, 1023, 1024, 1300, 1535, 1536, 2047, 2048, 5000, 999_999, 10_000_000_000] {
            let i = bucket(ns);
            assert!(ns < bucket_upper_ns(i) || ns >= 1 << 36, "{ns} in {i}");
            if i > 0 {
                assert!(ns >= bucket_upper_ns(i - 1), "{ns} above {}", i - 1);
            }
        }
        let c = CallCounter::default();
        (0..99).for_each(|_| c.record(1500));
        c.record(3_000_000);
        let h = c.histogram();
        assert_eq!(c.get(), (100, (99 * 1500 + 3_000_000) / 1000));
        assert_eq!(percentile_usec(&h, 0.5), 1.536);
        assert!(percentile_usec(&h, 0.999) >= 3000.0);
        assert_eq!(cumulative_usec(&h), [(2, 99), (4194, 100)]);
    }

    #[test]
    fn error_kinds_are_first_words_and_capped() {
        let e = ErrorKinds::default();
        e.count(b"ERR syntax error");
        e.count(b"-WRONGTYPE Operation against a key");
        e.count(b"ERR x");
        e.count(b"nospace");
        let kinds: Vec<_> = e.snapshot().into_iter().map(|(k, n)| format!("{k}={n}")).collect();
        assert_eq!(kinds, ["ERR=3", "WRONGTYPE=1"]);
        (0..200).for_each(|i| e.count(format!("K{i} x").as_bytes()));
        assert_eq!(e.snapshot().len(), 128);
    }
}
