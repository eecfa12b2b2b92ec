//! Waiting for a flag another thread sets, with an `AtomicWaker`: a load
//! while it is unset and a waker registration, where a `Notify` wait takes
//! a lock to join its waiters and another to leave, and a channel poll
//! walks the channel. For futures made anew on every pass of a loop.

use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// Ready once `set()` holds. The check is made again after registering,
/// so a `wake()` between the first check and the registration is not lost
/// (the setter sets, then wakes).
pub fn poll_until(waker: &AtomicWaker, cx: &Context<'_>, set: impl Fn() -> bool) -> Poll<()> {
    if set() {
        return Poll::Ready(());
    }
    waker.register(cx.waker());
    if set() { Poll::Ready(()) } else { Poll::Pending }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn pending_until_set_and_a_wake_reaches_the_registered_waiter() {
        let (waker, flag, woken) = (AtomicWaker::new(), AtomicBool::new(false), Arc::new(Count(AtomicUsize::new(0))));
        let w = Waker::from(woken.clone());
        let cx = Context::from_waker(&w);
        assert_eq!(poll_until(&waker, &cx, || flag.load(SeqCst)), Poll::Pending);
        flag.store(true, SeqCst);
        waker.wake();
        assert_eq!(woken.0.load(SeqCst), 1);
        assert_eq!(poll_until(&waker, &cx, || flag.load(SeqCst)), Poll::Ready(()));
    }
}
