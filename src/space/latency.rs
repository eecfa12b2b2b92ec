//! LATENCY: a space's latency events, as Redis's latency monitor keeps
//! them (`latency.c`): per event, the last 160 one-second samples (the
//! worst of each second) and the worst ever.
//!
//! Ferrite samples the events Redis's `call()` samples, `command` and
//! `fast-command`, when a command takes at least
//! `latency-monitor-threshold` milliseconds, into the space its
//! connection logs into (see `slowlog`).

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Redis's `LATENCY_TS_LEN`.
pub const SAMPLES: usize = 160;

/// One event's series.
#[derive(Debug, Clone)]
pub struct Series {
    /// A ring of (unix seconds, ms); a time of 0 is an unused slot.
    samples: [(u64, u64); SAMPLES],
    /// Where the next sample goes.
    idx: usize,
    /// The worst latency ever seen (ms).
    pub max: u64,
}

impl Series {
    fn new() -> Self {
        Series { samples: [(0, 0); SAMPLES], idx: 0, max: 0 }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..SAMPLES).map(|j| self.samples[(self.idx + j) % SAMPLES]).filter(|s| s.0 != 0)
    }

    /// The most recent sample.
    pub fn latest(&self) -> (u64, u64) {
        self.samples[(self.idx + SAMPLES - 1) % SAMPLES]
    }
}

/// A space's events, by name (sorted, so replies are stable).
#[derive(Debug, Default)]
pub struct Latency {
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl Latency {
    /// Adds a sample of `ms` at `now` (unix seconds); within one second
    /// only the worst is kept, as Redis's `latencyAddSample`.
    pub fn add(&self, event: &'static str, now: u64, ms: u64) {
        let mut g = self.events.lock();
        let ts = g.entry(event).or_insert_with(Series::new);
        ts.max = ts.max.max(ms);
        let prev = (ts.idx + SAMPLES - 1) % SAMPLES;
        if ts.samples[prev].0 == now {
            ts.samples[prev].1 = ts.samples[prev].1.max(ms);
            return;
        }
        ts.samples[ts.idx] = (now, ms);
        ts.idx = (ts.idx + 1) % SAMPLES;
    }

    /// Every event's series, by name.
    pub fn all(&self) -> Vec<(&'static str, Series)> {
        self.events.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    pub fn get(&self, event: &[u8]) -> Option<Series> {
        self.events.lock().iter().find(|(k, _)| k.as_bytes() == event).map(|(_, v)| v.clone())
    }

    /// Forgets one event (matched case-insensitively, as Redis) or, with
    /// None, all of them; returns how many were forgotten.
    pub fn reset(&self, event: Option<&[u8]>) -> usize {
        let mut g = self.events.lock();
        let before = g.len();
        g.retain(|k, _| event.is_some_and(|e| !k.as_bytes().eq_ignore_ascii_case(e)));
        before - g.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_the_worst() {
        let l = Latency::default();
        l.add("command", 100, 5);
        l.add("command", 100, 9);
        l.add("command", 100, 2);
        l.add("command", 101, 3);
        let s = l.get(b"command").unwrap();
        assert_eq!(s.samples().collect::<Vec<_>>(), vec![(100, 9), (101, 3)]);
        assert_eq!((s.latest(), s.max), ((101, 3), 9));
        for t in 0..200 {
            l.add("command", 1000 + t, 1);
        }
        assert_eq!(l.get(b"command").unwrap().samples().count(), SAMPLES);
        l.add("fast-command", 5, 1);
        assert_eq!(l.reset(Some(b"COMMAND")), 1);
        assert_eq!(l.reset(Some(b"nothing")), 0);
        assert_eq!(l.reset(None), 1);
        assert!(l.is_empty());
    }
}
