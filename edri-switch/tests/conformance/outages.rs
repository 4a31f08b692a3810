//! Outages: the link cut by a proxy, the hub killed and restarted, a router away beyond the
//! outage window, and the healthy link of a router while another one is away.

use super::routers;
use crate::support::*;
use edri::prelude::*;
use std::time::Duration;

/// The buffer for an absent router is bounded (senders wait), and what stays unacknowledged
/// beyond the outage window is given up and counted, not kept forever.
pub async fn bounded_buffer(t: &'static dyn Transport) {
    const BUFFER: usize = 256 << 10;
    let hub = t.start_hub("127.0.0.1:0");
    let (mut b, ready) = router(t, &Join::new(&hub.addr, "b"), "counter");
    assert_eq!(ready, "ready");
    let join = Join::new(&hub.addr, "ctl").buffer(BUFFER).outage_window(Duration::from_secs(2));
    let running = ctl_with(t, &join, Edri::builder().only_explicit()).await;
    wait_for_peers(t, &running, &["b"]).await;
    b.kill();
    // The hub tells this router that b is gone (down: it may come back).
    let limit = Duration::from_secs(10);
    wait_for_link(t, &running, limit, "b still shown connected", |l| !l.is_up("b")).await;
    // Events for b are kept until the buffer is full; then the sender waits.
    let ctx = running.ctx();
    let accepted = fill_until_blocked(ctx).await;
    let link = t.link(&running);
    assert_eq!(link.buffered, accepted);
    let kept = accepted as usize * (1024 + 64);
    assert!(kept <= BUFFER + 2048, "kept ~{kept} bytes for a {BUFFER}-byte buffer");
    assert!(kept >= BUFFER / 2, "kept only ~{kept} bytes");
    // After the window, they are given up, counted, and the sender can go on.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let link = t.link(&running);
    assert_eq!((link.lost, link.buffered), (accepted, 0), "{link:?}");
    let metrics = running.metrics();
    let line = format!("{}_lost_total {accepted}", t.metrics_prefix());
    assert!(metrics.contains(&line), "{metrics}");
    // b stayed away beyond the window too: forgotten, nothing more is kept for it.
    let limit = Duration::from_secs(5);
    wait_for_link(t, &running, limit, "b never forgotten", |l| !l.knows("b")).await;
    ctx.notify(Tick { n: 0, pad: vec![] }).await.unwrap();
    assert_eq!(t.link(&running).buffered, 0);
    running.shutdown().await.unwrap();
}

/// How the outage tests break the link.
#[derive(Debug, Clone, Copy)]
pub enum Outage {
    /// A proxy between the sending router and the hub cuts every connection for 10 s.
    LinkCut,
    /// The hub is killed with SIGKILL and restarted on the same port 5 s later.
    HubKilled,
}

/// 1 000 events/s for 20 s from router a to router b, with an outage after 5 s: the counter
/// on b receives every one of them once, in order.
pub async fn outage(t: &'static dyn Transport, kind: Outage) {
    let mut hub = t.start_hub("127.0.0.1:0");
    let proxy = Proxy::start(hub.addr.clone()).await;
    let sender_addr = match kind {
        Outage::LinkCut => proxy.addr.clone(),
        Outage::HubKilled => hub.addr.clone(),
    };
    let (_a, ready_a) = router(t, &Join::new(&sender_addr, "a"), "streamer");
    let (_b, ready_b) = router(t, &Join::new(&hub.addr, "b"), "counter");
    assert_eq!((ready_a.as_str(), ready_b.as_str()), ("ready", "ready"));
    let running = ctl(t, &hub.addr).await;
    wait_for_peers(t, &running, &["a", "b"]).await;
    let ctx = running.ctx();
    const COUNT: u64 = 20_000;
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (stalled_from, stalled_to) = match kind {
        Outage::LinkCut => {
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let during = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(8)).await;
            let later = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            proxy.restore();
            (during.received, later.received)
        }
        Outage::HubKilled => {
            hub.kill();
            tokio::time::sleep(Duration::from_secs(5)).await;
            hub.restart(t);
            wait_for_peers(t, &running, &["a", "b"]).await;
            (0, 0)
        }
    };
    // Nothing arrived while the sender was cut off: the outage was real.
    assert_eq!(stalled_from, stalled_to, "ticks arrived through a cut link");
    let report = wait_for_count(ctx, COUNT, Duration::from_secs(60)).await;
    println!("  {kind:?}: {report:?}");
    assert_eq!(
        (report.received, report.duplicates, report.out_of_order, report.last),
        (COUNT, 0, 0, COUNT - 1),
        "lost, duplicated or reordered ticks"
    );
    running.shutdown().await.unwrap();
    drop(hub);
}

/// The only subscriber of a stream is cut off for 25 s: the sender's own link, which has
/// nothing to send meanwhile, stays up (it pings), and the subscriber gets everything once it
/// is back.
pub async fn healthy_link(t: &'static dyn Transport) {
    const COUNT: u64 = 3_000;
    let hub = t.start_hub("127.0.0.1:0");
    let proxy = Proxy::start(hub.addr.clone()).await;
    let _routers = routers(t, &proxy.addr, &[("b", "counter")]);
    let running = sender(t, &hub.addr, 16_384).await;
    wait_for_peers(t, &running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 100 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let during = t.link(&running);
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
    let link = t.link(&running);
    assert_eq!((link.reconnects, link.lost), (0, 0), "{link:?}");
    running.shutdown().await.unwrap();
}
