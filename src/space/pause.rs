//! CLIENT PAUSE: a space's clients stop running commands (all of them, or
//! only writes) until a deadline or CLIENT UNPAUSE. The global space's
//! pause is the admin's and holds every client; a tenant's holds only that
//! tenant's own clients.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Pause {
    /// Unix ms when the pause ends (0 or past: none).
    end_ms: AtomicU64,
    /// Every command is held (else only writes).
    all: AtomicBool,
    resumed: Notify,
}

impl Pause {
    /// Pauses until `end_ms`. A pause in progress keeps the later end and
    /// the stricter kind, as Redis merges them.
    pub fn pause(&self, end_ms: u64, all: bool, now_ms: u64) {
        let running = self.end_ms.load(Relaxed) > now_ms;
        self.all.store(all || (running && self.all.load(Relaxed)), Relaxed);
        let end = if running { end_ms.max(self.end_ms.load(Relaxed)) } else { end_ms };
        self.end_ms.store(end, Relaxed);
    }

    pub fn unpause(&self) {
        self.end_ms.store(0, Relaxed);
        self.all.store(false, Relaxed);
        self.resumed.notify_waiters();
    }

    /// How long a command is held now (a write, or any): None when it
    /// runs. One relaxed load when no pause is set.
    #[inline(always)]
    pub fn holds(&self, now_ms: u64, write: bool) -> Option<u64> {
        let end = self.end_ms.load(Relaxed);
        if end <= now_ms || !(write || self.all.load(Relaxed)) {
            return None;
        }
        Some(end - now_ms)
    }

    /// Resolves at the next CLIENT UNPAUSE.
    pub fn resumed(&self) -> tokio::sync::futures::Notified<'_> {
        self.resumed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_merge_and_end() {
        let p = Pause::default();
        assert_eq!(p.holds(0, true), None);
        p.pause(1000, false, 0);
        assert_eq!((p.holds(100, true), p.holds(100, false)), (Some(900), None));
        p.pause(500, true, 100);
        assert_eq!(p.holds(100, false), Some(900), "stricter kind, later end");
        assert_eq!(p.holds(1000, true), None, "over at its end");
        p.pause(2000, false, 1500);
        assert_eq!(p.holds(1500, false), None, "a new pause after one ended starts afresh");
        p.unpause();
        assert_eq!(p.holds(1500, true), None);
    }
}
