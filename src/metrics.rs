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

/// Calls and microseconds for one command, per thread.
#[derive(Debug, Default)]
pub struct CallCounter {
    slots: [CachePadded<[AtomicU64; 2]>; SLOTS],
}

impl CallCounter {
    pub fn record(&self, usec: u64) {
        let s = &self.slots[slot()];
        s[0].fetch_add(1, Relaxed);
        s[1].fetch_add(usec, Relaxed);
    }

    /// (calls, usec)
    pub fn get(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |(c, u), s| (c + s[0].load(Relaxed), u + s[1].load(Relaxed)))
    }

    pub fn reset(&self) {
        self.slots.iter().for_each(|s| s.iter().for_each(|a| a.store(0, Relaxed)));
    }
}
