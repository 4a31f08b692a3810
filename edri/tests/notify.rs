#![allow(missing_docs)]
//! Notifications: fan-out to every subscriber, per-sender order, automatic start.

use edri::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Note {
    pub n: u64,
}

/// Asks a manager for what it saw.
#[event(request)]
pub struct Seen {
    pub who: String,
    #[response]
    pub notes: Vec<u64>,
}

macro_rules! listener {
    ($name:ident) => {
        #[derive(Default)]
        pub struct $name {
            seen: Vec<u64>,
        }

        #[manager]
        impl $name {
            #[solve]
            fn note(&mut self, ev: &Note) {
                self.seen.push(ev.n);
            }
        }
    };
}

listener!(First);
listener!(Second);

/// The third subscriber also answers `Seen` for all three through a shared log.
#[derive(Default)]
pub struct Third {
    log: Arc<Mutex<Vec<u64>>>,
}

#[manager]
impl Third {
    #[solve]
    async fn note(&self, ev: Note, ctx: &Ctx) {
        assert_eq!(ctx.manager_name(), Some("Third"));
        self.log.lock().unwrap().push(ev.n);
    }
}

#[tokio::test]
async fn fan_out_reaches_every_subscriber_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let running = Edri::builder()
        .only_explicit()
        .manager(First::default())
        .manager(Second::default())
        .manager(Third { log: log.clone() })
        .start()
        .await
        .unwrap();
    assert_eq!(
        running.managers(),
        ["First", "Second", "Third", "edri.health", "edri.scheduler", "edri.store"]
    );
    for n in 0..500 {
        running.ctx().notify(Note { n }).await.unwrap();
    }
    // Everything queued before `Stopping` is served before shutdown returns.
    running.shutdown().await.unwrap();
    assert_eq!(*log.lock().unwrap(), (0..500).collect::<Vec<_>>());
}

/// A collector that reports through a channel, to check the other two subscribers too.
pub struct Probe {
    tx: tokio::sync::mpsc::UnboundedSender<(&'static str, u64)>,
}

#[manager(manual)]
impl Probe {
    #[solve]
    fn note(&mut self, ev: &Note) {
        self.tx.send(("probe", ev.n)).ok();
    }
}

#[tokio::test]
async fn each_subscriber_gets_each_notification_once() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let running = Edri::builder()
        .only_explicit()
        .manager(First::default())
        .manager(Probe { tx })
        .start()
        .await
        .unwrap();
    for n in 0..100 {
        running.ctx().notify(Note { n }).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        let (_, n) =
            tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        got.push(n);
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // No duplicate arrives later.
    assert!(tokio::time::timeout(Duration::from_millis(50), rx.recv()).await.is_err());
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn notification_without_subscribers_is_fine() {
    #[event(notification)]
    pub struct Nobody;
    let running = Edri::builder().only_explicit().manager(First::default()).start().await.unwrap();
    running.ctx().notify(Nobody).await.unwrap();
    running.ctx().try_notify(Nobody).unwrap();
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn default_managers_start_automatically_and_without_excludes() {
    let running = Edri::builder().without::<Third>().start().await.unwrap();
    // `Probe` is `manual`, `Third` excluded: the two listeners remain.
    assert_eq!(
        running.managers(),
        ["First", "Second", "edri.health", "edri.scheduler", "edri.store"]
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn notify_after_shutdown_is_unavailable() {
    let running = Edri::builder().only_explicit().manager(First::default()).start().await.unwrap();
    let ctx = running.ctx().clone();
    running.shutdown().await.unwrap();
    let err = ctx.notify(Note { n: 1 }).await.unwrap_err();
    assert_eq!(err.status(), Status::Unavailable);
    assert!(ctx.is_stopping());
}
