//! Routers that stop: a receiver killed with events in its mailbox and restarted with the
//! same id, and routers that shut down (leave) while others go on.

use crate::support::*;
use edri::prelude::*;
use std::time::{Duration, Instant};

/// A log file of this test run, removed first.
fn log_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("edri-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// 1 000 ticks/s to a router that handles ~400/s (its mailbox fills); it is killed with
/// SIGKILL after 3 s and restarted with the same id: every tick is handled, none is lost,
/// and the few handled twice are at most what the sender counts as redelivered.
pub async fn receiver_killed(t: &'static dyn Transport) {
    const COUNT: u64 = 4_000;
    const IN_FLIGHT: u32 = 512;
    const MAILBOX: u64 = 256;
    let log = log_path("receiver-killed");
    let log_env = log.to_str().unwrap().to_owned();
    let hub = t.start_hub("127.0.0.1:0");
    let join_b = Join::new(&hub.addr, "b");
    let (mut b, ready) = router_env(t, &join_b, "slowcounter", &[("EDRI_TEST_LOG", &log_env)]);
    assert_eq!(ready, "ready");
    let running = sender(t, &hub.addr, IN_FLIGHT).await;
    wait_for_peers(t, &running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = handled(&log).len() as u64;
    let progress = ctx.request(Progress {}).await.unwrap();
    assert!(
        progress.sent > before + MAILBOX,
        "the receiver kept up ({before} handled of {} sent): nothing waits in its mailbox",
        progress.sent
    );
    b.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_b, ready) = router_env(t, &join_b, "slowcounter", &[("EDRI_TEST_LOG", &log_env)]);
    assert_eq!(ready, "ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let seen = handled(&log);
        if seen.len() as u64 >= COUNT || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let missing: Vec<u64> = (0..COUNT).filter(|n| !seen.contains_key(n)).take(10).collect();
    let link = t.link(&running);
    assert!(missing.is_empty(), "ticks never handled (first 10): {missing:?}; {link:?}");
    let twice: u64 = seen.values().map(|n| n - 1).sum();
    println!("  handled before the kill: {before}, twice: {twice}, {link:?}");
    assert_eq!(link.lost, 0, "{link:?}");
    assert!(link.redelivered > 0, "the sender did not see the restart: {link:?}");
    assert!(twice <= link.redelivered, "{twice} handled twice, {link:?}");
    assert!(twice <= MAILBOX + u64::from(IN_FLIGHT), "{twice} handled twice");
    let metrics = running.metrics();
    let line = format!("{}_redelivered_total {}", t.metrics_prefix(), link.redelivered);
    assert!(metrics.contains(&line), "{metrics}");
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&log);
}

/// Sends SIGTERM to `proc` (by its pid) and waits (at most 10 s) for it to exit.
fn terminate(proc: &mut Proc) -> std::process::ExitStatus {
    let pid = proc.child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "router {pid} still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A router that shuts down leaves: what it sent is handled before it is gone, the others
/// forget it at once (not after the outage window) and route nothing more to it; a router
/// process stopped by SIGTERM leaves the same way, and exits cleanly.
pub async fn leave_on_shutdown(t: &'static dyn Transport) {
    const COUNT: u64 = 2_000;
    let hub = t.start_hub("127.0.0.1:0");
    let (mut b, ready) = router(t, &Join::new(&hub.addr, "b"), "counter,echo");
    assert_eq!(ready, "ready");
    let running = ctl(t, &hub.addr).await;
    // A second router in this process, s, answers `Shout` too.
    let builder = Edri::builder().only_explicit().manager(Echo::default());
    let s = t.join(builder, &Join::new(&hub.addr, "s")).start().await.unwrap();
    wait_for_peers(t, &running, &["b", "s"]).await;
    wait_for_peers(t, &s, &["b", "ctl"]).await;

    for n in 0..COUNT {
        s.ctx().notify(Tick { n, pad: vec![] }).await.unwrap();
    }
    s.shutdown().await.unwrap();
    let report = running.ctx().request(Report {}).await.unwrap();
    assert_eq!(
        (report.received, report.duplicates, report.out_of_order),
        (COUNT, 0, 0),
        "what s sent before it left was not all handled"
    );
    // Forgotten as a router that left, not kept as one that is down for the outage window
    // (60 s), and at once: its connection closes when it shuts down, even though its process
    // goes on (well before the hub's 10 s dead-connection timeout).
    let limit = Duration::from_secs(5);
    wait_for_link(t, &running, limit, "s left but is still known", |l| !l.knows("s")).await;
    for i in 0..4 {
        let r = running.ctx().request(Shout { text: format!("hi {i}") }).await.unwrap();
        assert_eq!(r.router, "b", "a request went to a router that left");
    }

    let status = terminate(&mut b);
    assert!(status.success(), "b stopped by SIGTERM: {status}");
    let limit = Duration::from_secs(5);
    wait_for_link(t, &running, limit, "b left but is still known", |l| !l.knows("b")).await;
    let begin = Instant::now();
    let failure = running.ctx().request(Shout { text: "anyone".into() }).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1), "{:?}", begin.elapsed());
    let link = t.link(&running);
    assert_eq!(link.lost, 0, "{link:?}");
    running.shutdown().await.unwrap();
}
