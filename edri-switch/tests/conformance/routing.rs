//! Routing across routers: notifications to every subscribed router, a request to exactly
//! one responder, `request_all`, no responder, timeouts, failures, refused routers.

use super::{cluster, routers};
use crate::support::*;
use edri::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Every counter's report, once each (bounded: 20 s for all to reach `count`).
async fn reports(ctx: &Ctx, count: u64) -> Vec<ReportResponse> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = ctx.request_all(Report {}).await;
        let reports: Vec<ReportResponse> = all.into_iter().map(Result::unwrap).collect();
        if reports.iter().all(|r| r.received >= count) || Instant::now() > deadline {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A notification reaches the subscribers of every router, once each and in order: from
/// this router, and from a manager on router a.
pub async fn notify_fan_out(t: &'static dyn Transport) {
    let (_hub, _routers, running) =
        cluster(t, &[("a", "streamer"), ("b", "counter"), ("c", "counter")]).await;
    let ctx = running.ctx();

    for n in 0..10 {
        ctx.notify(Tick { n, pad: vec![] }).await.unwrap();
    }
    ctx.try_notify(Tick { n: 10, pad: vec![] }).unwrap();
    let got = reports(ctx, 11).await;
    assert_eq!(got.len(), 2, "one report per counter (b and c): {got:?}");
    for report in got {
        assert_eq!((report.received, report.duplicates, report.out_of_order), (11, 0, 0));
    }

    // A manager on router a streams to the counters on b and c.
    ctx.request(StartStream { first: 11, count: 500, per_sec: 100_000 }).await.unwrap();
    let got = reports(ctx, 511).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for report in got {
        assert_eq!(report.received, 511);
        assert_eq!((report.duplicates, report.out_of_order), (0, 0));
    }

    let link = t.link(&running);
    assert!(link.connected && link.lost == 0, "{link:?}");
    running.shutdown().await.unwrap();
}

/// A request goes to exactly one router (round-robin over b and c), its answer comes back
/// here only, and a failure keeps its status.
pub async fn request_one_responder(t: &'static dyn Transport) {
    let (_hub, _routers, running) = cluster(t, &[("b", "echo"), ("c", "echo")]).await;
    let ctx = running.ctx();

    let mut routers = HashSet::new();
    for i in 0..6 {
        let r = ctx.request(Shout { text: format!("hi {i}") }).await.unwrap();
        assert_eq!(r.echo, format!("HI {i}"));
        routers.insert(r.router);
    }
    assert_eq!(
        routers,
        HashSet::from(["b".to_owned(), "c".to_owned()]),
        "round-robin over b and c"
    );
    // Each request was handled once, by one router.
    let all = ctx.request_all(Who {}).await;
    let shouts: u64 = all.into_iter().map(|r| r.unwrap().shouts).sum();
    assert_eq!(shouts, 6, "requests handled by more than one router, or by none");

    let failure = ctx.request(Shout { text: "fail".into() }).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Conflict, "{failure}");
    running.shutdown().await.unwrap();
}

/// `request_all` gathers one answer per router: this router's responder and every other's.
pub async fn request_all(t: &'static dyn Transport) {
    let (_hub, _routers, running) = cluster(t, &[("b", "counter,echo"), ("c", "echo")]).await;

    let all = running.ctx().request_all(Who {}).await;
    let mut ids: Vec<String> = all.into_iter().map(|r| r.unwrap().router).collect();
    ids.sort();
    assert_eq!(ids, ["b", "c", "ctl"]);
    running.shutdown().await.unwrap();
}

/// A request nobody answers, on any router, fails with `Unavailable` at once.
pub async fn no_responder(t: &'static dyn Transport) {
    let (_hub, _routers, running) = cluster(t, &[("b", "echo")]).await;

    let begin = Instant::now();
    let failure = running.ctx().request(Nobody {}).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1));
    running.shutdown().await.unwrap();
}

/// The requester's timeout holds across routers, and the responder's router goes on.
pub async fn request_timeout(t: &'static dyn Transport) {
    let (_hub, _routers, running) = cluster(t, &[("b", "echo")]).await;
    let ctx = running.ctx();

    let begin = Instant::now();
    let failure =
        ctx.request(Slow { ms: 3_000 }).timeout(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Timeout, "{failure}");
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1_500), "{took:?}");
    ctx.request(Slow { ms: 10 }).await.unwrap();
    running.shutdown().await.unwrap();
}

/// A router with another secret is refused, and says so; the others go on.
pub async fn wrong_secret(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let intruder = Join::new(&hub.addr, "x").secret("not the secret");
    let (mut intruder, line) = router(t, &intruder, "counter");
    assert!(line.starts_with("error: ") && line.contains("authentication failed"), "{line}");
    assert_eq!(intruder.child.wait().unwrap().code(), Some(3));
    let _routers = routers(t, &hub.addr, &[("b", "counter")]);
    let running = ctl(t, &hub.addr).await;
    wait_for_peers(t, &running, &["b"]).await;
    assert!(!t.link(&running).knows("x"));
    running.shutdown().await.unwrap();
}

/// `tests/other_build.rs` declares it with another field: a router built from there is
/// refused.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Drifted {
    pub n: u64,
}

/// The router binary built from `tests/other_build.rs`, next to this one.
fn other_build() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let built = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).filter(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("other_build-") && !name.contains('.')
    });
    let newest = built.max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok());
    let hint = "no other_build binary: build it with `cargo test -p edri-switch --no-run`";
    newest.expect(hint).path()
}

/// A router whose binary defines an event differently is refused, with an error naming the
/// event; the others go on.
pub async fn fingerprint_mismatch(t: &'static dyn Transport) {
    let (hub, _routers, running) = cluster(t, &[("b", "counter")]).await;

    let join = Join::new(&hub.addr, "x");
    let (mut other, line) = router_exe(&other_build(), t, &join, "echo", &[]);
    assert!(line.starts_with("error: ") && line.contains("`Drifted`"), "{line}");
    assert!(line.contains("defined differently"), "{line}");
    assert_eq!(other.child.wait().unwrap().code(), Some(3));
    let link = t.link(&running);
    assert!(link.connected && link.is_up("b") && !link.knows("x"), "{link:?}");
    running.shutdown().await.unwrap();
}
