#![allow(missing_docs)]
//! Start-up: `Started` is every subscriber's first event, sent after everyone is subscribed;
//! shutdown sends `Stopping` and drains.

use edri::prelude::*;
use std::sync::{Arc, Mutex};

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Hello {
    pub from: String,
}

type Log = Arc<Mutex<Vec<String>>>;

/// Greets everyone as soon as it starts.
pub struct Greeter {
    log: Log,
}

#[manager(manual)]
impl Greeter {
    #[solve]
    async fn started(&mut self, _: &Started, ctx: &Ctx) {
        self.log.lock().unwrap().push("greeter:started".into());
        ctx.notify(Hello { from: "greeter".into() }).await.unwrap();
    }

    #[solve]
    fn stopping(&mut self, _: &Stopping) {
        self.log.lock().unwrap().push("greeter:stopping".into());
    }
}

/// Records what it receives.
pub struct Listener {
    log: Log,
}

#[manager(manual)]
impl Listener {
    #[solve]
    fn started(&mut self, _: &Started) {
        self.log.lock().unwrap().push("listener:started".into());
    }

    #[solve]
    fn hello(&mut self, ev: &Hello) {
        self.log.lock().unwrap().push(format!("listener:hello from {}", ev.from));
    }

    #[solve]
    fn stopping(&mut self, _: &Stopping) {
        self.log.lock().unwrap().push("listener:stopping".into());
    }
}

async fn start_pair(log: &Log) -> edri::Running {
    Edri::builder()
        .only_explicit()
        .manager(Greeter { log: log.clone() })
        .manager(Listener { log: log.clone() })
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_comes_first_and_nobody_misses_early_events() {
    // Repeated: the greeter may run before the listener's task is first polled.
    for _ in 0..50 {
        let log: Log = Arc::default();
        let running = start_pair(&log).await;
        running.shutdown().await.unwrap();
        let log = log.lock().unwrap().clone();
        let listener: Vec<_> = log.iter().filter(|l| l.starts_with("listener:")).cloned().collect();
        // `Started` is first; the greeter's early `Hello` is delivered even though shutdown
        // began right after start (the drain waits for it); `Stopping` arrives once.
        assert_eq!(
            listener.first().map(String::as_str),
            Some("listener:started"),
            "full log: {log:?}"
        );
        let count = |line: &str| listener.iter().filter(|l| *l == line).count();
        assert_eq!(count("listener:hello from greeter"), 1, "full log: {log:?}");
        assert_eq!(count("listener:stopping"), 1, "full log: {log:?}");
        assert_eq!(listener.len(), 3, "full log: {log:?}");
        let greeter: Vec<_> = log.iter().filter(|l| l.starts_with("greeter:")).cloned().collect();
        assert_eq!(greeter, ["greeter:started", "greeter:stopping"]);
    }
}

#[tokio::test]
async fn events_before_stopping_keep_their_order() {
    let log: Log = Arc::default();
    let running = start_pair(&log).await;
    // Let the greeting land before stopping: then the order is fixed.
    for _ in 0..1_000 {
        if log.lock().unwrap().iter().any(|l| l.contains("hello")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    running.shutdown().await.unwrap();
    let listener: Vec<_> =
        log.lock().unwrap().iter().filter(|l| l.starts_with("listener:")).cloned().collect();
    assert_eq!(listener, ["listener:started", "listener:hello from greeter", "listener:stopping"]);
}

/// Asks the router to stop as soon as it starts.
pub struct Quitter {
    log: Log,
}

#[manager(manual)]
impl Quitter {
    #[solve]
    fn started(&mut self, _: &Started, ctx: &Ctx) {
        self.log.lock().unwrap().push("quitter:started".into());
        ctx.shutdown();
    }

    #[solve]
    fn stopping(&mut self, _: &Stopping) {
        self.log.lock().unwrap().push("quitter:stopping".into());
    }
}

#[tokio::test]
async fn run_returns_after_ctx_shutdown_with_a_graceful_stop() {
    let log: Log = Arc::default();
    let run = Edri::builder().only_explicit().manager(Quitter { log: log.clone() }).run();
    tokio::time::timeout(std::time::Duration::from_secs(5), run)
        .await
        .expect("run returned")
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["quitter:started", "quitter:stopping"]);
}
