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

/// A mutex's guard: at once when it is free, else after a moment's wait
/// here, else waiting off this worker (its holder may run long: a
/// script holds its state's lock for the whole run).
pub fn lock<T>(m: &parking_lot::Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    match m.try_lock_for(Duration::from_millis(1)) {
        Some(g) => g,
        None => while_away(|| m.lock()),
    }
}
