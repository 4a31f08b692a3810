#![allow(missing_docs)]
//! Shutdown: every send after the router stopped taking events is refused; every event that
//! was accepted is handled or, when the grace period runs out, counted as dropped.

use edri::prelude::*;
use edri::{Running, TryNotifyError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Note {
    pub n: u64,
}

/// Keeps its manager busy for `ms`.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Block {
    pub ms: u64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Ping {}

/// Counts the notes it handled to the end (each takes about a millisecond).
pub struct Counter {
    handled: Arc<AtomicU64>,
}

#[manager(capacity = 64)]
impl Counter {
    #[solve]
    async fn note(&mut self, _: &Note) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
    }

    #[solve]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse {}
    }
}

pub struct Stuck;

#[manager]
impl Stuck {
    #[solve]
    async fn block(&mut self, ev: &Block) {
        tokio::time::sleep(Duration::from_millis(ev.ms)).await;
    }
}

async fn start(grace: Duration, handled: &Arc<AtomicU64>) -> Running {
    Edri::builder()
        .only_explicit()
        .manager(Counter { handled: handled.clone() })
        .manager(Stuck)
        .grace_period(grace)
        .start()
        .await
        .unwrap()
}

/// Sends notes until one is refused, then a few more (all must be refused too); returns how
/// many were accepted.
async fn send_until_refused(ctx: Ctx) -> u64 {
    let mut accepted = 0;
    for n in 0..1_000_000 {
        match ctx.notify(Note { n }).await {
            Ok(()) => accepted += 1,
            Err(failure) => {
                assert_eq!(failure.status(), Status::Unavailable, "{failure}");
                break;
            }
        }
    }
    for n in 0..5 {
        let failure = ctx.notify(Note { n }).await.unwrap_err();
        assert_eq!(failure.status(), Status::Unavailable, "{failure}");
    }
    accepted
}

/// The grace period runs out with events in the mailbox (50 rounds): every accepted note is
/// handled or counted as dropped, and every send after the stop is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_every_accepted_event_is_handled_or_counted() {
    let mut dropped_somewhere = 0;
    for round in 0..50 {
        let handled = Arc::new(AtomicU64::new(0));
        let running = start(Duration::from_millis(50), &handled).await;
        let ctx = running.ctx().clone();
        ctx.notify(Block { ms: 60_000 }).await.unwrap();
        let sender = tokio::spawn(send_until_refused(ctx.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let report = running.shutdown_report().await;
        assert!(!report.drained, "round {round}: the stuck manager drained");
        let accepted = tokio::time::timeout(Duration::from_secs(30), sender)
            .await
            .expect("the sender is refused promptly")
            .unwrap();
        let counter = report.vitals.iter().find(|v| v.name == "Counter").unwrap();
        let handled = handled.load(Ordering::SeqCst);
        assert_eq!(
            accepted,
            handled + counter.dropped,
            "round {round}: {accepted} accepted, {handled} handled, {} dropped",
            counter.dropped
        );
        dropped_somewhere += counter.dropped;
        // After the stop: refused, never silently accepted.
        let failure = ctx.notify(Note { n: 0 }).await.unwrap_err();
        assert_eq!(failure.status(), Status::Unavailable, "{failure}");
        assert!(matches!(ctx.try_notify(Note { n: 0 }), Err(TryNotifyError::Closed(_))));
        let failure = ctx.request(Ping {}).await.unwrap_err();
        assert_eq!(failure.status(), Status::Unavailable, "{failure}");
        assert!(ctx.request_all(Ping {}).await.iter().all(|r| r.is_err()));
    }
    assert!(dropped_somewhere > 0, "no round ended with events in a mailbox: nothing was tested");
}

/// A graceful stop while a sender keeps sending: every accepted note is handled, none dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_handles_everything_it_accepted() {
    for round in 0..10 {
        let handled = Arc::new(AtomicU64::new(0));
        let running = start(Duration::from_secs(30), &handled).await;
        let sender = tokio::spawn(send_until_refused(running.ctx().clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let report = running.shutdown_report().await;
        let accepted =
            tokio::time::timeout(Duration::from_secs(30), sender).await.unwrap().unwrap();
        assert!(report.drained, "round {round}");
        assert_eq!(
            (report.dropped, handled.load(Ordering::SeqCst)),
            (0, accepted),
            "round {round}"
        );
    }
}
