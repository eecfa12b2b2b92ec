//! Time as the store sees it: milliseconds since the Unix epoch, plus the
//! 24-bit second-resolution LRU clock and the logarithmic LFU counter that
//! Redis keeps per key (`evict.c`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds, with an offset tests can move forward instead of sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        (real + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Moves this clock forward (injected time for tests and `DEBUG`).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Redis's LRU clock: seconds, 24 bits, wrapping.
pub const LRU_MAX: u32 = (1 << 24) - 1;

pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_MAX
}

/// Idle seconds between an access stamp and now, accounting for wrap-around.
pub fn idle_secs(stamp: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    if now >= stamp { (now - stamp) as u64 } else { (LRU_MAX - stamp + now) as u64 }
}

/// New keys start with this LFU counter so they are not evicted at once.
pub const LFU_INIT: u8 = 5;
const LFU_LOG_FACTOR: f64 = 10.0;

/// Logarithmic increment: likelier the lower the counter (Redis `LFULogIncr`).
pub fn lfu_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT) as f64;
    let p = 1.0 / (base * LFU_LOG_FACTOR + 1.0);
    if fastrand::f64() < p { counter + 1 } else { counter }
}

/// Decays the counter by one per `decay_minutes` elapsed since the last access.
pub fn lfu_decay(counter: u8, idle_secs: u64, decay_minutes: u64) -> u8 {
    if decay_minutes == 0 {
        return counter;
    }
    let periods = idle_secs / 60 / decay_minutes;
    counter.saturating_sub(periods.min(255) as u8)
}
