//! `#[solve(thread, limit = N)]`: handlers on threads of their own.
//!
//! Each thread handler has a pool of up to `limit` std threads ([`Threads`]), started on first
//! need, reused, and ended after [`KEEP_ALIVE`] without work. A call hands its job to an idle
//! thread over that thread's own channel; the thread runs the handler (inside the router's
//! runtime context, the manager's span and the call's trace link) and answers the requester
//! itself: no task and no hop through the runtime between the handler and its requester.
//! (tokio's blocking pool, used before, cost about three times a raw thread's round trip here:
//! one shared mutex and condvar for every blocking task, and the answer relayed by a task.)

use super::WorkerStart;
use crate::Ctx;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::mode::Dispatch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// How long a pool thread waits for its next call before it ends (tokio's blocking pool keeps
/// its threads as long).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The name of every pool thread.
const THREAD_NAME: &str = "edri-thread";

/// One call for a pool thread: it runs the handler, then drops its [`Release`] (the thread is
/// idle again) before it frees the call's slot and answers. Called with [`NoThread`] when no
/// thread could be started for it: it answers with that failure instead.
type Job = Box<dyn FnOnce(Result<Release, NoThread>) + Send>;

/// No thread could be started for a call (the system's thread limit, out of memory).
#[derive(Debug)]
pub(crate) struct NoThread {
    error: std::io::Error,
    /// Calls refused so far by this handler's pool, this one included.
    refused: u64,
}

impl NoThread {
    fn failure(&self) -> crate::Failure {
        crate::Failure::unavailable(format!(
            "cannot start a thread for this thread handler: {} ({} calls refused so far)",
            self.error, self.refused
        ))
    }
}

/// The threads of one thread handler.
#[derive(Default)]
pub(crate) struct Threads {
    /// The idle threads, most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// Numbers the threads.
    next: AtomicU64,
    /// Calls refused because no thread could be started.
    refused: AtomicU64,
    /// Starts a thread (a stand-in that fails, in tests).
    #[cfg(test)]
    spawn_fails: std::sync::atomic::AtomicBool,
}

/// An idle thread: its number and its channel (the only sender: dropping it ends the thread).
struct Idle {
    id: u64,
    jobs: Sender<(Job, Release)>,
}

/// Puts a thread back among its pool's idle ones when dropped after its call (not when the
/// call unwinds past the handler's `catch_unwind`: that thread ends).
pub(crate) struct Release {
    pool: Weak<Threads>,
    idle: Option<Idle>,
}

impl Drop for Release {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let (Some(pool), Some(idle)) = (self.pool.upgrade(), self.idle.take()) {
            pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(idle);
        }
    }
}

impl Threads {
    /// Runs `job` on an idle thread, or on a new one when none is idle (the handler's
    /// semaphore keeps the threads at `limit`: a thread is idle again before its slot is
    /// freed).
    fn run(self: &Arc<Self>, mut job: Job) {
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some(idle) = idle else { break };
            let jobs = idle.jobs.clone();
            let release = Release { pool: Arc::downgrade(self), idle: Some(idle) };
            match jobs.send((job, release)) {
                Ok(()) => return,
                // The thread is gone: try another.
                Err(std::sync::mpsc::SendError((back, mut release))) => {
                    release.idle = None;
                    job = back;
                }
            }
        }
        let (jobs, queue) = std::sync::mpsc::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let release = Release { pool: Arc::downgrade(self), idle: Some(Idle { id, jobs }) };
        let pool = Arc::downgrade(self);
        // Kept here until the thread takes it, so that a refused start can still answer.
        let first = Arc::new(Mutex::new(Some((job, release))));
        let taken = first.clone();
        let started = self.spawn(move || {
            let first = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(first) = first {
                serve(&pool, id, &queue, first);
            }
        });
        if let Err(error) = started {
            let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(%error, refused, "cannot start a thread for a thread handler: the call is refused");
            let first = first.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some((job, mut release)) = first {
                release.idle = None;
                job(Err(NoThread { error, refused }));
            }
        }
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        #[cfg(test)]
        if self.spawn_fails.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("no threads left (test)"));
        }
        std::thread::Builder::new().name(THREAD_NAME.into()).spawn(f).map(drop)
    }

    /// Calls refused so far because no thread could be started.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A pool thread: runs its calls until its pool is gone or it was idle for [`KEEP_ALIVE`].
fn serve(pool: &Weak<Threads>, id: u64, queue: &Receiver<(Job, Release)>, first: (Job, Release)) {
    let (mut job, mut release) = first;
    loop {
        job(Ok(release));
        (job, release) = loop {
            match queue.recv_timeout(KEEP_ALIVE) {
                Ok(next) => break next,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let Some(pool) = pool.upgrade() else { return };
                    let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(at) = idle.iter().position(|t| t.id == id) {
                        idle.swap_remove(at);
                        return;
                    }
                    // Taken from the idle ones meanwhile: its call is on the way.
                }
            }
        };
    }
}

/// Prepares a thread-mode call of handler `handler` of the manager owning `ctx`.
pub(crate) fn call<E, F>(ctx: &Ctx, handler: u16, envelope: Envelope, f: F) -> WorkerStart
where
    E: Event,
    F: FnOnce(E, Ctx) -> Result<E::Output, crate::Failure> + Send + 'static,
{
    let (event, reply) = E::__open(envelope);
    let slot = ctx.own_slot();
    let limit = slot.limits[usize::from(handler)].clone();
    let threads = slot.threads[usize::from(handler)].clone();
    let ctx = ctx.clone();
    let span = tracing::Span::current();
    let link = crate::trace::current();
    let start = move |permit: Option<OwnedSemaphorePermit>| {
        let since = ctx.shared().clock();
        let job = move |release: Result<Release, NoThread>| {
            let shared = ctx.shared().clone();
            let release = match release {
                Ok(release) => release,
                Err(no_thread) => {
                    shared.stats(ctx.origin()).failed();
                    drop(permit);
                    return crate::mode::dispatch::send::<E>(&ctx, reply, Err(no_thread.failure()));
                }
            };
            let result = {
                let _runtime = shared.runtime.enter();
                let _enter = span.enter();
                let _trace = crate::trace::enter(link);
                let worker_ctx = ctx.clone();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    E::__own(event).and_then(|event| f(event, worker_ctx))
                }))
            };
            let result = result.unwrap_or_else(|panic| {
                let message = crate::manager::panic_message(&*panic);
                let manager = ctx.manager_name().unwrap_or("?");
                let method = ctx.own_slot().descriptor.handlers[usize::from(handler)].method;
                tracing::error!(manager, method, event = E::META.name, panic = %message, "thread handler panicked");
                shared.stats(ctx.origin()).crashed();
                Err(crate::manager::panicked(manager, method, message))
            });
            shared.record_call(ctx.origin(), handler, since);
            drop(release);
            drop(permit);
            crate::mode::dispatch::send::<E>(&ctx, reply, result);
        };
        match threads {
            Some(threads) => threads.run(Box::new(job)),
            None => unreachable!("a thread handler has its threads"),
        }
    };
    WorkerStart { limit, start: Box::new(start) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on the pool and waits for it.
    fn on(pool: &Arc<Threads>, f: impl FnOnce() + Send + 'static) -> std::thread::ThreadId {
        let (tx, rx) = std::sync::mpsc::channel();
        pool.run(Box::new(move |release| {
            f();
            drop(release.unwrap());
            tx.send(std::thread::current().id()).unwrap();
        }));
        rx.recv_timeout(Duration::from_secs(5)).expect("the job ran")
    }

    #[test]
    fn a_thread_is_reused_and_ends_with_its_pool() {
        let pool = Arc::new(Threads::default());
        let first = on(&pool, || {});
        assert_ne!(first, std::thread::current().id());
        assert_eq!(on(&pool, || {}), first, "the idle thread takes the next call");
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        drop(pool);
    }

    #[test]
    fn a_thread_that_died_is_replaced() {
        let pool = Arc::new(Threads::default());
        let (tx, rx) = std::sync::mpsc::channel();
        pool.run(Box::new(move |release| {
            let _release = release.unwrap();
            tx.send(std::thread::current().id()).unwrap();
            panic!("a job that unwinds past its handler");
        }));
        let dead = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(on(&pool, || {}), dead, "a new thread takes the next call");
    }

    #[test]
    fn a_call_that_gets_no_thread_is_answered_and_counted() {
        let pool = Arc::new(Threads::default());
        pool.spawn_fails.store(true, Ordering::Relaxed);
        for round in 1..=2 {
            let (tx, rx) = std::sync::mpsc::channel();
            pool.run(Box::new(move |release| {
                let failure = release.map(drop).unwrap_err().failure();
                tx.send(failure).unwrap();
            }));
            let failure = rx.recv_timeout(Duration::from_secs(5)).expect("answered at once");
            assert_eq!(failure.status(), crate::Status::Unavailable);
            assert!(failure.message().contains("cannot start a thread"), "{failure}");
            assert_eq!(pool.refused(), round);
        }
        pool.spawn_fails.store(false, Ordering::Relaxed);
        on(&pool, || {});
        assert_eq!(pool.refused(), 2, "a thread starts again once the system allows it");
    }
}
