//! What survives a crash or a long cut, each router a real process on 127.0.0.1: a receiver
//! killed with events in its mailbox loses none of them; a healthy link stays up while another
//! router is away; the switch says whom it refused and why.

#![allow(missing_docs)]

mod support;

use edri::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

/// The numbers in a `SlowCounter` log, with how often each was handled.
fn handled(log: &std::path::Path) -> BTreeMap<u64, u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = BTreeMap::new();
    // The last line may be half-written by a killed router.
    for line in text.lines().filter_map(|l| l.parse::<u64>().ok()) {
        *seen.entry(line).or_insert(0) += 1;
    }
    seen
}

/// A log file of this test run, removed first.
fn log_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("edri-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// This process's router, sending ticks (`Streamer`), joined as `ctl`.
async fn sender(switch: &str, in_flight: u32) -> edri::Running {
    Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .manager(Streamer::default())
        .switch(edri::switch::Switch::new(switch).secret(SECRET).id("ctl").in_flight(in_flight))
        .start()
        .await
        .expect("start the ctl router")
}

/// 1 000 ticks/s to a router that handles ~400/s (its mailbox fills); it is killed with
/// SIGKILL after 3 s and restarted with the same id: every tick is handled, none is lost,
/// and the few handled twice are at most what the sender counts as redelivered.
async fn receiver_killed() {
    const COUNT: u64 = 4_000;
    const IN_FLIGHT: u32 = 512;
    const MAILBOX: u64 = 256;
    let log = log_path("receiver-killed");
    let log_env = log.to_str().unwrap().to_owned();
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut b, ready) = router_env("b", "slowcounter", &addr, &[("EDRI_TEST_LOG", &log_env)]);
    assert_eq!(ready, "ready");
    let running = sender(&addr, IN_FLIGHT).await;
    wait_for_peers(&running, &["b"]).await;
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
    let (_b, ready) = router_env("b", "slowcounter", &addr, &[("EDRI_TEST_LOG", &log_env)]);
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
    let status = running.switch().unwrap();
    assert!(missing.is_empty(), "ticks never handled (first 10): {missing:?}; {status:?}");
    let twice: u64 = seen.values().map(|n| n - 1).sum();
    println!("  handled before the kill: {before}, twice: {twice}, {status:?}");
    assert_eq!(status.lost, 0, "{status:?}");
    assert!(status.redelivered > 0, "the sender did not see the restart: {status:?}");
    assert!(twice <= status.redelivered, "{twice} handled twice, {status:?}");
    assert!(twice <= MAILBOX + u64::from(IN_FLIGHT), "{twice} handled twice");
    let metrics = running.metrics();
    let line = format!("edri_switch_redelivered_total {}", status.redelivered);
    assert!(metrics.contains(&line), "{metrics}");
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&log);
}

/// The only subscriber of a stream is cut off for 25 s: the sender's own link, which has
/// nothing to send meanwhile, stays up (it pings), and the subscriber gets everything once it
/// is back.
async fn healthy_link_while_another_router_is_away() {
    const COUNT: u64 = 3_000;
    let (_switch, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let (_b, ready) = router("b", "counter", &proxy.addr);
    assert_eq!(ready, "ready");
    let running = sender(&addr, 16_384).await;
    wait_for_peers(&running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 100 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let during = running.switch().unwrap();
    proxy.restore();
    assert!(during.connected, "{during:?}");
    assert_eq!(during.reconnects, 0, "the sender's healthy link was dropped: {during:?}");
    assert!(during.buffered > 1_000, "nothing was kept for b: {during:?}");
    let report = wait_for_count(ctx, COUNT, Duration::from_secs(60)).await;
    assert_eq!(
        (report.received, report.duplicates, report.out_of_order),
        (COUNT, 0, 0),
        "lost, duplicated or reordered ticks"
    );
    let status = running.switch().unwrap();
    assert_eq!((status.reconnects, status.lost), (0, 0), "{status:?}");
    running.shutdown().await.unwrap();
}

/// A router with the wrong secret: the switch logs the refusal with the router's id and
/// address, in plain text (no colours into a pipe).
async fn refusal_is_logged() {
    let (_switch, addr, log) = switch_logged("127.0.0.1:0");
    let (mut intruder, line) = router_with_secret("x", "counter", &addr, "not the secret");
    assert!(line.starts_with("error: "), "{line}");
    let _ = intruder.child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let refusal = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains("refused") => break line,
            Ok(line) => lines.push(line),
            Err(_) => panic!("no refusal logged; the switch logged: {lines:#?}"),
        }
    };
    assert!(refusal.contains("WARN"), "{refusal}");
    assert!(refusal.contains("router `x`") && refusal.contains("secret"), "{refusal}");
    assert!(refusal.contains("addr=127.0.0.1:"), "{refusal}");
    assert!(!refusal.contains('\u{1b}'), "ANSI escapes in a piped log: {refusal:?}");
}

fn main() {
    support::run(vec![
        ("receiver_killed", || Box::pin(receiver_killed())),
        ("healthy_link_while_another_router_is_away", || {
            Box::pin(healthy_link_while_another_router_is_away())
        }),
        ("refusal_is_logged", || Box::pin(refusal_is_logged())),
    ]);
}
