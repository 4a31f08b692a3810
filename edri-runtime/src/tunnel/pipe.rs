//! One direction of a tunnel: a bounded queue of items between one writer and one reader.
//!
//! The queue holds at most `capacity` items: a writer waits while it is full (the credit of
//! the in-process flow control). The writer ends the direction by closing it (the reader sees
//! the end of the stream) or by going away without closing (the reader sees an error); a
//! reader that goes away makes the writer's next send fail. A bridge to another router pushes
//! past the capacity (the other router is held back by credits instead) and watches how many
//! items the reader took, to grant that many credits back.

use crate::Failure;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Set by the writer: `Ok` closed, `Err` failed or gone.
    end: Option<Result<(), Failure>>,
    /// Set when the reader is gone: why the writer's sends fail.
    reader_gone: Option<Failure>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Items the reader took since the watcher last looked.
    consumed: usize,
    watcher: Option<Waker>,
    /// The most items ever queued at once.
    peak: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new pipe holding at most `capacity` items (at least one).
pub(crate) fn pipe<T>(capacity: usize) -> (PipeTx<T>, PipeRx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            end: None,
            reader_gone: None,
            reader: None,
            writer: None,
            consumed: 0,
            watcher: None,
            peak: 0,
        }),
    });
    (PipeTx { shared: shared.clone(), done: false }, PipeRx { shared })
}

/// The writing side.
pub(crate) struct PipeTx<T> {
    shared: Arc<Shared<T>>,
    /// Closed or failed on purpose: dropping it says nothing more.
    done: bool,
}

/// The reading side.
pub(crate) struct PipeRx<T> {
    shared: Arc<Shared<T>>,
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

impl<T> PipeTx<T> {
    /// Queues `item`, waiting while the queue is full.
    pub(crate) async fn send(&mut self, item: T) -> Result<(), Failure> {
        let mut item = Some(item);
        poll_fn(|cx| self.poll_send(cx, &mut item)).await
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        item: &mut Option<T>,
    ) -> Poll<Result<(), Failure>> {
        let mut state = self.shared.lock();
        if let Some(why) = &state.reader_gone {
            return Poll::Ready(Err(why.clone()));
        }
        if self.done {
            return Poll::Ready(Err(Failure::invalid("this side of the tunnel is closed")));
        }
        if state.items.len() >= state.capacity {
            state.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(item) = item.take() {
            push(&mut state, item);
        }
        Poll::Ready(Ok(()))
    }

    /// Queues `item` now, past the capacity if need be (the bridge: the other router keeps
    /// within its credits).
    pub(crate) fn push(&mut self, item: T) -> Result<(), Failure> {
        let mut state = self.shared.lock();
        if let Some(why) = &state.reader_gone {
            return Err(why.clone());
        }
        push(&mut state, item);
        Ok(())
    }

    /// Ends this direction: `Ok` the reader sees the end of the stream, `Err` it sees the
    /// failure (after the items queued before).
    pub(crate) fn finish(&mut self, end: Result<(), Failure>) {
        if self.done {
            return;
        }
        self.done = true;
        let mut state = self.shared.lock();
        state.end = Some(end);
        wake(&mut state.reader);
    }

    /// Items queued, not taken by the reader yet.
    pub(crate) fn queued(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// The most items ever queued at once.
    pub(crate) fn peak(&self) -> usize {
        self.shared.lock().peak
    }

    /// Waits until the reader took items, and says how many (since the last call); `None`
    /// once the reader is gone and took nothing more.
    pub(crate) async fn consumed(&self) -> Option<usize> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.consumed > 0 {
                return Poll::Ready(Some(std::mem::take(&mut state.consumed)));
            }
            if state.reader_gone.is_some() {
                return Poll::Ready(None);
            }
            state.watcher = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

fn push<T>(state: &mut State<T>, item: T) {
    state.items.push_back(item);
    state.peak = state.peak.max(state.items.len());
    wake(&mut state.reader);
}

impl<T> Drop for PipeTx<T> {
    fn drop(&mut self) {
        if !self.done {
            let failure = if std::thread::panicking() {
                Failure::crashed("the other side of the tunnel panicked")
            } else {
                Failure::unavailable("the other side of the tunnel was dropped without closing it")
            };
            self.finish(Err(failure));
        }
    }
}

impl<T> PipeRx<T> {
    /// The next item; `Ok(None)` once the writer closed and everything was taken; the
    /// writer's failure once it failed or went away.
    pub(crate) async fn recv(&mut self) -> Result<Option<T>, Failure> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Failure>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.items.pop_front() {
            state.consumed += 1;
            wake(&mut state.writer);
            wake(&mut state.watcher);
            return Poll::Ready(Ok(Some(item)));
        }
        match &state.end {
            Some(Ok(())) => Poll::Ready(Ok(None)),
            Some(Err(failure)) => Poll::Ready(Err(failure.clone())),
            None => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Stops reading: queued items are dropped, the writer's next send fails with `why`.
    pub(crate) fn stop(&mut self, why: Failure) {
        let mut state = self.shared.lock();
        if state.reader_gone.is_none() {
            state.reader_gone = Some(why);
        }
        state.items.clear();
        wake(&mut state.writer);
        wake(&mut state.watcher);
    }
}

impl<T> Drop for PipeRx<T> {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            Failure::crashed("the other side of the tunnel panicked")
        } else {
            Failure::unavailable("the other side of the tunnel stopped receiving")
        };
        self.stop(why);
    }
}

/// Runs `future` to completion on this thread (the blocking twins of the tunnel's methods,
/// for threads outside the runtime).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn items_in_order_then_the_end() {
        let (mut tx, mut rx) = pipe(4);
        block_on(async {
            for i in 0..4 {
                tx.send(i).await.unwrap();
            }
            tx.finish(Ok(()));
            for i in 0..4 {
                assert_eq!(rx.recv().await.unwrap(), Some(i));
            }
            assert_eq!(rx.recv().await.unwrap(), None);
            assert_eq!(rx.recv().await.unwrap(), None);
        });
        assert_eq!(tx.peak(), 4);
    }

    #[test]
    fn a_full_pipe_holds_the_writer_back() {
        let (mut tx, mut rx) = pipe(2);
        let writer = std::thread::spawn(move || {
            block_on(async {
                for i in 0..100u32 {
                    tx.send(i).await.unwrap();
                    assert!(tx.queued() <= 2);
                }
            });
            tx
        });
        let mut got = Vec::new();
        block_on(async {
            while got.len() < 100 {
                got.push(rx.recv().await.unwrap().unwrap());
            }
        });
        let tx = writer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(tx.peak() <= 2, "{}", tx.peak());
    }

    #[test]
    fn a_dropped_writer_is_an_error_and_a_dropped_reader_too() {
        let (tx, mut rx) = pipe::<u8>(2);
        drop(tx);
        let err = block_on(rx.recv()).unwrap_err();
        assert_eq!(err.status(), Status::Unavailable);

        let (mut tx, rx) = pipe::<u8>(2);
        drop(rx);
        assert!(block_on(tx.send(1)).is_err());
        assert!(tx.push(2).is_err());
    }

    #[test]
    fn a_panicking_writer_is_a_crash() {
        let (tx, mut rx) = pipe::<u8>(2);
        let _ = std::thread::spawn(move || {
            let _tx = tx;
            panic!("boom");
        })
        .join();
        assert_eq!(block_on(rx.recv()).unwrap_err().status(), Status::Crashed);
    }

    #[test]
    fn the_watcher_sees_what_the_reader_took() {
        let (mut tx, mut rx) = pipe(1);
        tx.push(1).unwrap();
        tx.push(2).unwrap();
        tx.push(3).unwrap();
        block_on(async {
            rx.recv().await.unwrap();
            rx.recv().await.unwrap();
            assert_eq!(tx.consumed().await, Some(2));
            drop(rx);
            assert_eq!(tx.consumed().await, None);
        });
    }
}
