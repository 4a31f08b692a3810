#![allow(missing_docs)]
//! Thread-mode handlers, priority mailboxes, panics and `HealthCheck`.
//! (Process-mode handlers are tested in `process.rs`, which is its own worker binary.)

use edri::prelude::*;
use edri::{Health, HealthCheck};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

#[event(request)]
#[derive(Debug, Clone)]
pub struct Crunch {
    pub n: u32,
    #[response]
    pub thread: String,
}

/// Panics with a `&str` payload, or with a formatted `String` one carrying `n`.
#[event(request)]
pub struct ThreadPanic {
    pub n: Option<u32>,
}

/// The inline twin of [`ThreadPanic`].
#[event(request)]
pub struct InlinePanic {
    pub n: Option<u32>,
}

/// Shared by the thread handler (which has no `self`) and the test.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// For each call: its number and how many calls had finished when it began.
static STARTS: Mutex<Vec<(u32, usize)>> = Mutex::new(Vec::new());

#[derive(Default)]
pub struct Cruncher;

#[manager]
impl Cruncher {
    #[solve(thread, limit = 2)]
    fn crunch(ev: Crunch, ctx: Ctx) -> CrunchResponse {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        STARTS.lock().unwrap().push((ev.n, FINISHED.load(Ordering::SeqCst)));
        PEAK.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        FINISHED.fetch_add(1, Ordering::SeqCst);
        assert!(!ctx.is_stopping());
        CrunchResponse { thread: std::thread::current().name().unwrap_or("?").to_owned() }
    }

    #[solve(thread)]
    fn explode(ev: ThreadPanic) -> ThreadPanicResponse {
        match ev.n {
            None => panic!("thread handler bug"),
            Some(n) => panic!("thread handler bug number {n}"),
        }
    }

    #[solve]
    fn explode_inline(&mut self, ev: &InlinePanic) -> InlinePanicResponse {
        match ev.n {
            None => panic!("inline handler bug"),
            Some(n) => panic!("inline handler bug number {n}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_handlers_respect_their_limit_and_start_in_arrival_order() {
    use std::future::{Future, IntoFuture};
    use std::task::Poll;
    let running = Edri::builder().only_explicit().manager(Cruncher).start().await.unwrap();
    // Eight requests polled in order from one task: they reach the mailbox in order 0..8.
    let mut calls: Vec<_> =
        (0..8).map(|n| Box::pin(running.ctx().request(Crunch { n }).into_future())).collect();
    let mut answers: Vec<Option<Result<CrunchResponse, Failure>>> = (0..8).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (call, answer) in calls.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none()
                && let Poll::Ready(r) = call.as_mut().poll(cx)
            {
                *answer = Some(r);
            }
        }
        if answers.iter().all(Option::is_some) { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    for answer in answers {
        assert_ne!(answer.unwrap().unwrap().thread, "?");
    }
    assert_eq!(PEAK.load(Ordering::SeqCst), 2, "at most (and here exactly) 2 at once");
    // Arrival order: with 2 slots, call n can only begin once n - 1 calls have finished
    // (a later call overtaking an earlier one would begin with fewer finished).
    let starts = STARTS.lock().unwrap().clone();
    assert_eq!(starts.len(), 8);
    for (n, finished) in starts {
        assert!(finished + 1 >= n as usize, "call {n} began after only {finished} finished");
    }
    drop(calls);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_thread_handler_gives_crashed_and_is_counted() {
    let running = Edri::builder().only_explicit().manager(Cruncher).start().await.unwrap();
    let err = running.ctx().request(ThreadPanic { n: None }).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    assert!(err.message().contains("`Cruncher::explode` panicked: thread handler bug"), "{err}");
    let err = running.ctx().request(ThreadPanic { n: Some(7) }).await.unwrap_err();
    assert!(err.message().contains("panicked: thread handler bug number 7"), "{err}");
    let v = running.vitals().into_iter().find(|v| v.name == "Cruncher").unwrap();
    assert_eq!(v.crashed, 2);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_inline_handler_gives_crashed_with_the_panic_text() {
    let running = Edri::builder().only_explicit().manager(Cruncher).start().await.unwrap();
    let err = running.ctx().request(InlinePanic { n: None }).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    assert!(
        err.message().contains("`Cruncher::explode_inline` panicked: inline handler bug"),
        "{err}"
    );
    let err = running.ctx().request(InlinePanic { n: Some(7) }).await.unwrap_err();
    assert_eq!(err.status(), Status::Crashed);
    assert!(err.message().contains("panicked: inline handler bug number 7"), "{err}");
    // The manager lived on to answer the second request, and counted both.
    let v = running.vitals().into_iter().find(|v| v.name == "Cruncher").unwrap();
    assert_eq!(v.crashed, 2);
    running.shutdown().await.unwrap();
}

#[event(notification, priority = 5)]
#[derive(Debug, Clone)]
pub struct Work {
    pub lane: u8,
    pub seq: u32,
}

#[event(notification)]
pub struct Open;

/// Holds its first event at a gate so that everything else queues up behind it.
pub struct Prioritized {
    gate: Arc<Semaphore>,
    out: Arc<Mutex<Vec<(u8, u32)>>>,
}

#[manager(queue = priority, capacity = 10_000, manual)]
impl Prioritized {
    #[solve]
    async fn open(&mut self, _: &Open) {
        self.gate.acquire().await.unwrap().forget();
    }

    #[solve]
    fn work(&mut self, ev: &Work) {
        self.out.lock().unwrap().push((ev.lane, ev.seq));
    }
}

#[tokio::test]
async fn priority_mailbox_serves_lane_by_lane_fifo_within_each() {
    let gate = Arc::new(Semaphore::new(0));
    let out = Arc::new(Mutex::new(Vec::new()));
    let running = Edri::builder()
        .only_explicit()
        .manager(Prioritized { gate: gate.clone(), out: out.clone() })
        .start()
        .await
        .unwrap();
    let ctx = running.ctx();
    // `Open` (lane 0) is taken first and holds the manager while 10 000 events queue up.
    ctx.notify_priority(Open, 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut sent = Vec::new();
    for seq in 0..10_000u32 {
        // A spread of lanes, in a scrambled order; lane 5 is the event's default.
        let lane = [3u8, 0, 7, 5, 1, 5, 9, 0, 2][(seq as usize * 7) % 9];
        if lane == 5 {
            ctx.notify(Work { lane, seq }).await.unwrap();
        } else {
            ctx.notify_priority(Work { lane, seq }, lane).await.unwrap();
        }
        sent.push((lane, seq));
    }
    gate.add_permits(1);
    for _ in 0..2_000 {
        if out.lock().unwrap().len() == 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = out.lock().unwrap().clone();
    // Expected: stable sort by lane (lower first, arrival order within a lane).
    sent.sort_by_key(|&(lane, _)| lane);
    assert_eq!(got.len(), 10_000);
    assert!(
        got == sent,
        "first difference at {:?}",
        got.iter().zip(&sent).position(|(a, b)| a != b)
    );
    running.shutdown().await.unwrap();
}

#[event(request)]
pub struct Ask {
    #[response]
    pub ok: bool,
}

#[derive(Default)]
pub struct Answerer;

#[manager]
impl Answerer {
    #[solve]
    fn ask(&mut self, _: &Ask) -> AskResponse {
        AskResponse { ok: true }
    }
}

#[tokio::test]
async fn health_check_lists_every_manager() {
    let running =
        Edri::builder().only_explicit().manager(Answerer).manager(Cruncher).start().await.unwrap();
    assert!(running.ctx().request(Ask {}).await.unwrap().ok);
    let health = running.ctx().request(HealthCheck::default()).await.unwrap();
    assert_eq!(health.pid, std::process::id());
    let names: Vec<_> = health.managers.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Answerer", "Cruncher", "edri.health", "edri.scheduler", "edri.store"]);
    let answerer = &health.managers[0];
    assert_eq!(
        (answerer.processed, answerer.failed, answerer.crashed, answerer.capacity),
        (1, 0, 0, 1024)
    );
    running.shutdown().await.unwrap();

    // Left out on request.
    let running = Edri::builder()
        .only_explicit()
        .manager(Answerer)
        .without::<Health>()
        .start()
        .await
        .unwrap();
    assert_eq!(running.managers(), ["Answerer", "edri.scheduler", "edri.store"]);
    let err = running.ctx().request(HealthCheck::default()).await.unwrap_err();
    assert_eq!(err.status(), Status::Unavailable);
    running.shutdown().await.unwrap();
}
