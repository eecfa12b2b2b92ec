//! Giving a tokio worker thread back while this thread waits or computes
//! for long. A multi-threaded runtime's worker carries the queue of other
//! connections' tasks; `block_in_place` hands that queue to a fresh thread
//! so they run meanwhile, and this thread carries on outside the runtime.

use std::time::Duration;

/// Whether this thread is a worker of a multi-threaded runtime, whose queue
/// can be handed over (a current-thread runtime's cannot: `block_in_place`
/// panics there, so callers offload to the blocking pool instead).
pub fn is_multi_thread_worker() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs `f`, which may block for long, without holding up the tasks
/// queued behind this one (on a multi-threaded runtime's worker).
pub fn while_away<R>(f: impl FnOnce() -> R) -> R {
    if is_multi_thread_worker() { tokio::task::block_in_place(f) } else { f() }
}

/// Hands this thread's worker over for the rest of what it is doing here
/// (a script past its time on the worker). `block_in_place` takes the
/// worker back when its closure returns if the new thread has not claimed
/// it yet, so the closure gives it that moment (a thread of the blocking
/// pool starts within tens of microseconds).
pub fn leave() {
    if is_multi_thread_worker() {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_micros(300)));
    }
}

/// How long a worker waits for a lock before waiting off it.
const WAIT_ON_WORKER: Duration = Duration::from_millis(1);

/// A lock's guard whose holder may run long (a script holds its space's
/// lock and its state's for the whole run): `try_for` waits a moment on
/// this worker, then `wait` waits off it.
pub fn acquire<G>(try_for: impl FnOnce(Duration) -> Option<G>, wait: impl FnOnce() -> G) -> G {
    match try_for(WAIT_ON_WORKER) {
        Some(g) => g,
        None => while_away(wait),
    }
}

/// A mutex's guard, as [`acquire`] takes it.
pub fn lock<T>(m: &parking_lot::Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    acquire(|t| m.try_lock_for(t), || m.lock())
}
