//! What a running script's instruction hook and its `redis.call`s watch:
//! SCRIPT KILL, whether it wrote, and how long it has held its thread.
//!
//! Scripts run where their request was read, on a runtime worker: handing
//! every run to the blocking pool cost eight times a short script's own
//! work (benches/scripting.sh). A run that lasts past [`LEAVE_AFTER`]
//! hands its worker (the queue of other connections' tasks) to a fresh
//! thread and goes on where it is, so other tenants wait about that long
//! (longer only where the hand-over has to be tried again).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How long a script may hold a runtime worker before handing it over.
pub const LEAVE_AFTER: Duration = Duration::from_millis(2);

/// Checks (hook firings, commands) a run makes before it may count as
/// long.
const MIN_CHECKS: u32 = 4;

/// The longest wait between tries at handing a worker over.
const RETRY_AT_MOST: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct Watch {
    /// Set by SCRIPT KILL (or shutdown); the hook raises on it.
    pub(super) kill: AtomicBool,
    /// Whether the running script has written (then it cannot be killed).
    pub(super) wrote: AtomicBool,
    /// Whether this run started on a runtime worker, to hand over.
    on_worker: AtomicBool,
    /// When the run began, or last tried to hand its worker over (ns).
    since_ns: AtomicU64,
    /// How long until the next try at handing the worker over.
    wait_ns: AtomicU64,
    /// The run went past [`LEAVE_AFTER`] on a worker.
    pub(super) long: AtomicBool,
    /// While a library loads: when its code must have ended (ns; 0: no limit).
    load_deadline_ns: AtomicU64,
    /// Checks this run (see `check`).
    checks: AtomicU32,
}

/// Monotonic nanoseconds (the TSC-based clock: a few ns a reading, where
/// `clock_gettime` costs tens, and it is read after every command).
fn now_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<quanta::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(quanta::Instant::now).elapsed().as_nanos() as u64
}

impl Watch {
    /// A run begins; `on_worker`: it runs on a multi-threaded runtime's
    /// worker (see [`crate::worker`]).
    pub(super) fn start(&self, on_worker: bool) {
        self.kill.store(false, Relaxed);
        self.wrote.store(false, Relaxed);
        self.on_worker.store(on_worker, Relaxed);
        self.since_ns.store(now_ns(), Relaxed);
        self.wait_ns.store(0, Relaxed);
        self.checks.store(0, Relaxed);
    }

    pub(super) fn killed(&self) -> bool {
        self.kill.load(Relaxed)
    }

    /// A library starts loading (FUNCTION LOAD), its code allowed to run
    /// for `timeout` (none: replay, which must load what was accepted).
    pub(super) fn start_loading(&self, timeout: Option<Duration>) {
        let deadline = timeout.map_or(0, |t| now_ns().saturating_add(t.as_nanos() as u64).max(1));
        self.load_deadline_ns.store(deadline, Relaxed);
    }

    pub(super) fn end_loading(&self) {
        self.load_deadline_ns.store(0, Relaxed);
    }

    pub(super) fn load_timed_out(&self) -> bool {
        let deadline = self.load_deadline_ns.load(Relaxed);
        deadline != 0 && now_ns() > deadline
    }

    /// Called every few thousand instructions and after each command: a
    /// run that has held its worker past [`LEAVE_AFTER`] hands it over.
    pub(super) fn check(&self) {
        if !self.on_worker.load(Relaxed) {
            return;
        }
        // A run of a few commands that looks long was most likely descheduled
        // (wall-clock time passed, not work): handing over would not help.
        if self.checks.fetch_add(1, Relaxed) < MIN_CHECKS {
            return;
        }
        let now = now_ns();
        let since = self.since_ns.load(Relaxed);
        let wait = self.wait_ns.load(Relaxed).max(LEAVE_AFTER.as_nanos() as u64);
        if now.saturating_sub(since) < wait {
            return;
        }
        // From now on the space is busy: its other connections wait for
        // the script without blocking a worker on the space's lock.
        self.long.store(true, Relaxed);
        crate::worker::leave();
        // The hand-over can fail (the worker taken back before a new thread
        // claimed it), and nothing tells whether it did: try again, ever
        // less often, since a try that finds no worker costs a short sleep.
        self.since_ns.store(now, Relaxed);
        self.wait_ns.store((wait * 2).min(RETRY_AT_MOST.as_nanos() as u64), Relaxed);
    }
}
