//! A core's drain signal at shutdown: set when the core handles
//! `ShardRequest::Drain`, awaited by that core's connections (to stop
//! reading) and long polls (to answer at once).
//!
//! Invariant: only the core's own thread touches its signal (thread-local):
//! no lock and no atomic on the request path, which polls it for every frame.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct DrainSignal {
    draining: Cell<bool>,
    next_waiter_id: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

thread_local! {
    static SIGNAL: DrainSignal = DrainSignal::default();
}

/// This core starts draining: wakes everything waiting in [`drained`].
pub fn begin() {
    SIGNAL.with(|signal| {
        signal.draining.set(true);
        // Wakers only schedule their tasks, so nothing re-enters the map here.
        for (_, waker) in signal.waiters.borrow_mut().drain() {
            waker.wake();
        }
    });
}

pub fn is_draining() -> bool {
    SIGNAL.with(|signal| signal.draining.get())
}

/// Resolves once this core drains. Keep one pinned across polls: it
/// registers its waker once, and leaves the waiter set when dropped.
pub fn drained() -> Drained {
    Drained { waiter_id: None }
}

pub struct Drained {
    waiter_id: Option<u64>,
}

impl Future for Drained {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        SIGNAL.with(|signal| {
            if signal.draining.get() {
                return Poll::Ready(());
            }
            let mut waiters = signal.waiters.borrow_mut();
            let id = *self.waiter_id.get_or_insert_with(|| {
                let id = signal.next_waiter_id.get();
                signal.next_waiter_id.set(id + 1);
                id
            });
            match waiters.get_mut(&id) {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                Some(waker) => waker.clone_from(cx.waker()),
                None => {
                    waiters.insert(id, cx.waker().clone());
                }
            }
            Poll::Pending
        })
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        if let Some(id) = self.waiter_id {
            // The thread-local is gone only when the core's thread ends.
            let _ = SIGNAL.try_with(|signal| signal.waiters.borrow_mut().remove(&id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn waiters_register_once_leave_when_dropped_and_wake_at_drain() {
        // A thread of its own: the signal is thread-local.
        std::thread::spawn(|| {
            let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
            let waker = Waker::from(counter.clone());
            let mut context = Context::from_waker(&waker);
            let mut kept = Box::pin(drained());
            let mut dropped = Box::pin(drained());
            assert!(kept.as_mut().poll(&mut context).is_pending());
            assert!(kept.as_mut().poll(&mut context).is_pending());
            assert!(dropped.as_mut().poll(&mut context).is_pending());
            assert_eq!(SIGNAL.with(|s| s.waiters.borrow().len()), 2, "one entry per future");
            drop(dropped);
            assert_eq!(SIGNAL.with(|s| s.waiters.borrow().len()), 1);
            assert!(!is_draining());
            begin();
            assert!(is_draining());
            assert_eq!(counter.0.load(Ordering::Relaxed), 1, "the waiting future is woken");
            assert!(kept.as_mut().poll(&mut context).is_ready());
            assert!(
                Box::pin(drained()).as_mut().poll(&mut context).is_ready(),
                "late waiters see it"
            );
        })
        .join()
        .expect("test thread");
    }
}
