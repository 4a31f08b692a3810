#![allow(missing_docs)]
//! Bounded mailboxes: `try_notify` reports `Full`, `notify` and `request` wait for room.

use edri::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

#[event(notification)]
#[derive(Debug, Clone, PartialEq)]
pub struct Job(pub u32);

#[event(request)]
pub struct Count {
    #[response]
    pub done: u32,
}

/// Handles one `Job` per permit of `gate`; reports each job it starts on `entered`.
pub struct Worker {
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<u32>,
    done: u32,
}

#[manager(capacity = 4, manual)]
impl Worker {
    #[solve]
    async fn job(&mut self, ev: &Job) {
        self.entered.send(ev.0).ok();
        self.gate.acquire().await.unwrap().forget();
        self.done += 1;
    }

    #[solve]
    fn count(&self, _: &Count) -> CountResponse {
        CountResponse { done: self.done }
    }
}

/// A router with one `Worker` whose gate starts closed.
async fn start_worker() -> (edri::Running, Arc<Semaphore>, mpsc::UnboundedReceiver<u32>) {
    let gate = Arc::new(Semaphore::new(0));
    let (entered, entered_rx) = mpsc::unbounded_channel();
    let running = Edri::builder()
        .only_explicit()
        .manager(Worker { gate: gate.clone(), entered, done: 0 })
        .start()
        .await
        .unwrap();
    (running, gate, entered_rx)
}

#[tokio::test]
async fn full_mailbox_makes_try_notify_fail_and_notify_wait() {
    let (running, gate, mut entered_rx) = start_worker().await;
    let ctx = running.ctx().clone();

    // The first job is taken by the handler, which then waits at the gate.
    ctx.notify(Job(0)).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), entered_rx.recv()).await.unwrap(),
        Some(0)
    );
    // The mailbox holds 4 more.
    for n in 1..=4 {
        ctx.try_notify(Job(n)).unwrap();
    }
    // The fifth does not fit: `Full`, and the event comes back.
    match ctx.try_notify(Job(5)) {
        Err(edri::TryNotifyError::Full(job)) => assert_eq!(job, Job(5)),
        other => panic!("expected Full, got {other:?}"),
    }
    // `notify` waits for room instead.
    let waiting = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.notify(Job(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "notify returned while the mailbox was full");

    // Open the gate for everyone: the waiting send completes and all six jobs run in order.
    gate.add_permits(6);
    tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    let mut order = Vec::new();
    while order.len() < 5 {
        order.push(
            tokio::time::timeout(Duration::from_secs(5), entered_rx.recv()).await.unwrap().unwrap(),
        );
    }
    assert_eq!(order, [1, 2, 3, 4, 5]);
    assert_eq!(ctx.request(Count {}).await.unwrap().done, 6);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_waits_for_room_and_its_timeout_covers_the_wait() {
    let (running, gate, mut entered_rx) = start_worker().await;
    let ctx = running.ctx().clone();
    ctx.notify(Job(0)).await.unwrap();
    entered_rx.recv().await.unwrap();
    for n in 1..=4 {
        ctx.notify(Job(n)).await.unwrap();
    }
    // The mailbox is full: the request cannot even be queued before its deadline.
    let err = ctx.request(Count {}).timeout(Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(err.status(), Status::Timeout);
    // With room it goes through, after the five jobs.
    gate.add_permits(5);
    let done = ctx.request(Count {}).timeout(Duration::from_secs(5)).await.unwrap().done;
    assert_eq!(done, 5);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn try_notify_delivers_to_all_subscribers_or_none() {
    // Two workers; only the second one is jammed.
    let open = Arc::new(Semaphore::new(1_000));
    let jammed = Arc::new(Semaphore::new(0));
    let (e1, _r1) = mpsc::unbounded_channel();
    let (e2, mut r2) = mpsc::unbounded_channel();

    pub struct Other(Worker);
    #[manager(manual, capacity = 4)]
    impl Other {
        #[solve]
        async fn job(&mut self, ev: &Job) {
            self.0.job(ev).await;
        }
        #[solve]
        fn count(&self, _: &Count2) -> Count2Response {
            Count2Response { done: self.0.done }
        }
    }
    #[event(request)]
    pub struct Count2 {
        #[response]
        pub done: u32,
    }

    let running = Edri::builder()
        .only_explicit()
        .manager(Worker { gate: open, entered: e1, done: 0 })
        .manager(Other(Worker { gate: jammed.clone(), entered: e2, done: 0 }))
        .start()
        .await
        .unwrap();
    let ctx = running.ctx().clone();
    ctx.notify(Job(0)).await.unwrap();
    r2.recv().await.unwrap();
    for n in 1..=4 {
        ctx.try_notify(Job(n)).unwrap();
    }
    assert!(matches!(ctx.try_notify(Job(5)), Err(edri::TryNotifyError::Full(_))));
    // The free worker did not get job 5 either: it saw exactly 0..=4.
    assert_eq!(ctx.request(Count {}).await.unwrap().done, 5);
    jammed.add_permits(10);
    assert_eq!(ctx.request(Count2 {}).await.unwrap().done, 5);
    running.shutdown().await.unwrap();
}
