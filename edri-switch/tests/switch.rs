//! Several routers through a real `edri-switch`, each router a real process on 127.0.0.1:
//! routing, outages of the link and of the switch, tunnels.

#![allow(missing_docs)]

mod support;

use edri::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::*;

// ----- tests --------------------------------------------------------------------------------

/// Notifications, requests, request_all, round-robin, Unavailable, timeouts and failures
/// between four routers (three processes and this one).
async fn cross_router() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (_a, ready_a) = router("a", "streamer", &addr);
    let (_b, ready_b) = router("b", "counter,echo", &addr);
    let (_c, ready_c) = router("c", "echo", &addr);
    assert_eq!((ready_a.as_str(), ready_b.as_str(), ready_c.as_str()), ("ready", "ready", "ready"));
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["a", "b", "c"]).await;
    let ctx = running.ctx();

    // A notification from this router reaches the counter on b.
    for n in 0..10 {
        ctx.notify(Tick { n, pad: vec![] }).await.unwrap();
    }
    ctx.try_notify(Tick { n: 10, pad: vec![] }).unwrap();
    // A request goes to one router; answers come back here only.
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
    let report = ctx.request(Report {}).await.unwrap();
    assert_eq!((report.received, report.duplicates, report.out_of_order), (11, 0, 0));

    // A failure keeps its status across routers.
    let failure = ctx.request(Shout { text: "fail".into() }).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Conflict, "{failure}");

    // request_all: this router's responder and every other router's.
    let all = ctx.request_all(Who {}).await;
    let mut ids: Vec<String> = all.into_iter().map(|r| r.unwrap().router).collect();
    ids.sort();
    assert_eq!(ids, ["b", "c", "ctl"]);

    // Nobody answers: at once.
    let begin = Instant::now();
    let failure = ctx.request(Nobody {}).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1));

    // The requester's timeout holds across routers.
    let begin = Instant::now();
    let failure =
        ctx.request(Slow { ms: 3_000 }).timeout(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(failure.status(), edri::Status::Timeout, "{failure}");
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1_500), "{took:?}");
    ctx.request(Slow { ms: 10 }).await.unwrap();

    // A manager on router a streams to the counter on b.
    ctx.request(StartStream { first: 11, count: 500, per_sec: 100_000 }).await.unwrap();
    let report = wait_for_count(ctx, 511, Duration::from_secs(20)).await;
    assert_eq!(report.received, 511);
    assert_eq!((report.duplicates, report.out_of_order), (0, 0));

    let status = running.switch().unwrap();
    assert!(status.connected && status.lost == 0, "{status:?}");
    running.shutdown().await.unwrap();
}

/// A router with another secret is refused, and says so; the others go on.
async fn wrong_secret() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut intruder, line) = router_with_secret("x", "counter", &addr, "not the secret");
    assert!(line.starts_with("error: ") && line.contains("authentication failed"), "{line}");
    assert_eq!(intruder.child.wait().unwrap().code(), Some(3));
    let (_b, ready) = router("b", "counter", &addr);
    assert_eq!(ready, "ready");
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["b"]).await;
    assert!(running.switch().unwrap().peers.iter().all(|p| p.id != "x"));
    running.shutdown().await.unwrap();
}

/// The buffer for an absent router is bounded (senders wait), and what stays unacknowledged
/// beyond the outage window is given up and counted, not kept forever.
async fn bounded_buffer_and_outage_window() {
    const BUFFER: usize = 256 << 10;
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut b, ready) = router("b", "counter", &addr);
    assert_eq!(ready, "ready");
    let config = edri::switch::Switch::new(addr.as_str())
        .secret(SECRET)
        .id("ctl")
        .buffer(BUFFER)
        .outage_window(Duration::from_secs(2));
    let running =
        Edri::builder().only_explicit().manager(Ctl).switch(config).start().await.unwrap();
    wait_for_peers(&running, &["b"]).await;
    b.kill();
    // The switch tells this router that b is gone (down: it may come back).
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.switch().unwrap().peers.iter().any(|p| p.id == "b" && p.connected) {
        assert!(Instant::now() < deadline, "b still shown connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Events for b are kept until the buffer is full; then the sender waits.
    let ctx = running.ctx();
    let mut accepted = 0u64;
    let blocked = loop {
        let tick = Tick { n: accepted, pad: vec![1; 1024] };
        match tokio::time::timeout(Duration::from_millis(200), ctx.notify(tick)).await {
            Ok(result) => {
                result.unwrap();
                accepted += 1;
            }
            Err(_) => break true,
        }
        if accepted > 10_000 {
            break false;
        }
    };
    assert!(blocked, "the sender never waited");
    let status = running.switch().unwrap();
    assert_eq!(status.buffered, accepted);
    let kept = accepted as usize * (1024 + 64);
    assert!(kept <= BUFFER + 2048, "kept ~{kept} bytes for a {BUFFER}-byte buffer");
    assert!(kept >= BUFFER / 2, "kept only ~{kept} bytes");
    // After the window, they are given up, counted, and the sender can go on.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let status = running.switch().unwrap();
    assert_eq!((status.lost, status.buffered), (accepted, 0), "{status:?}");
    let metrics = running.metrics();
    assert!(metrics.contains(&format!("edri_switch_lost_total {accepted}")), "{metrics}");
    // b stayed away beyond the window too: forgotten, nothing more is kept for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.switch().unwrap().peers.iter().any(|p| p.id == "b") {
        assert!(Instant::now() < deadline, "b never forgotten");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.notify(Tick { n: 0, pad: vec![] }).await.unwrap();
    assert_eq!(running.switch().unwrap().buffered, 0);
    running.shutdown().await.unwrap();
}

/// How the outage tests break the link.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// A proxy between the sending router and the switch cuts every connection for 10 s.
    Proxy,
    /// The switch is killed with SIGKILL and restarted on the same port 5 s later.
    KillSwitch,
}

/// 1 000 events/s for 20 s from router a to router b, with an outage after 5 s: the counter
/// on b receives every one of them once, in order.
async fn outage(kind: Outage) {
    let (mut switch_proc, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let sender_switch = match kind {
        Outage::Proxy => proxy.addr.clone(),
        Outage::KillSwitch => addr.clone(),
    };
    let (_a, ready_a) = router("a", "streamer", &sender_switch);
    let (_b, ready_b) = router("b", "counter", &addr);
    assert_eq!((ready_a.as_str(), ready_b.as_str()), ("ready", "ready"));
    let running = ctl(&addr).await;
    wait_for_peers(&running, &["a", "b"]).await;
    let ctx = running.ctx();
    const COUNT: u64 = 20_000;
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (stalled_from, stalled_to) = match kind {
        Outage::Proxy => {
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let during = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(8)).await;
            let later = ctx.request(Report {}).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            proxy.restore();
            (during.received, later.received)
        }
        Outage::KillSwitch => {
            switch_proc.kill();
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (restarted, again) = switch(&addr);
            assert_eq!(again, addr);
            switch_proc = restarted;
            wait_for_peers(&running, &["a", "b"]).await;
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
    drop(switch_proc);
}

/// Chunk `i` of a test stream: lower-case letters, different in every chunk.
fn chunk(i: usize, size: usize) -> edri::Chunk {
    edri::Chunk((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect())
}

/// Sends `chunks` chunks of `size` bytes through an uppercasing tunnel and checks that every
/// one comes back converted, once, in order.
async fn stream_upper<E>(tunnel: edri::Tunnel<E>, chunks: usize, size: usize)
where
    E: edri::TunnelEvent<Send = edri::Chunk, Receive = edri::Chunk>,
{
    let (mut tx, mut rx) = tunnel.split();
    let sender = tokio::spawn(async move {
        for i in 0..chunks {
            tx.send(chunk(i, size)).await.unwrap();
        }
        tx.close();
    });
    let mut received = 0;
    while let Some(got) = rx.recv().await.unwrap() {
        let mut want = chunk(received, size);
        want.make_ascii_uppercase();
        assert!(got == want, "chunk {received} differs");
        received += 1;
    }
    sender.await.unwrap();
    assert_eq!(received, chunks);
}

/// Tunnels from this router to an acceptor on router t: a 100 MiB stream, rejection, no
/// acceptor, a panicking acceptor, a slow receiver, 100 tunnels at once, and the acceptor's
/// router killed mid-stream.
async fn tunnels() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let (mut t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let outage = Duration::from_secs(2);
    let running = Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(edri::switch::Switch::new(&addr).secret(SECRET).id("ctl").outage_window(outage))
        .start()
        .await
        .unwrap();
    wait_for_peers(&running, &["t"]).await;
    let ctx = running.ctx();

    // 100 MiB in 64 KiB chunks, uppercased on t: complete and in order.
    let (total, size) = (100usize << 20, 64usize << 10);
    let begin = Instant::now();
    stream_upper(ctx.open(Upper {}).await.unwrap(), total / size, size).await;
    let took = begin.elapsed();
    println!(
        "  100 MiB across routers (there and back) in {took:.2?}: {:.0} MiB/s",
        100.0 / took.as_secs_f64()
    );

    // The acceptor runs in a worker process of router t: two bridges in a row.
    stream_upper(ctx.open(UpperInWorker {}).await.unwrap(), 128, size).await;

    // An item too large for the link fails the tunnel, on both sides, and nothing else: the
    // next tunnel works.
    let mut tunnel = ctx.open(Upper {}).await.unwrap();
    tunnel.send(edri::Chunk(vec![b'x'; 64 << 20])).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), tunnel.recv()).await.unwrap();
    let err = err.unwrap_err();
    assert_eq!(err.status(), edri::Status::Invalid, "{err}");
    assert!(err.message().contains("above the limit"), "{err}");
    let mut tunnel = ctx.open(Upper {}).await.unwrap();
    tunnel.send(chunk(0, 10)).await.unwrap();
    assert_eq!(tunnel.recv().await.unwrap().map(|c| c.len()), Some(10));
    tunnel.close();
    assert_eq!(tunnel.recv().await.unwrap(), None);

    // Rejection and no acceptor.
    let err = ctx.open(Refused {}).await.unwrap_err();
    assert_eq!((err.status(), err.message()), (edri::Status::Forbidden, "not for you"));
    let err = ctx.open(Orphan {}).await.unwrap_err();
    assert_eq!(err.status(), edri::Status::Unavailable, "{err}");

    // The acceptor panics: the opener's next receive fails at once.
    let mut tunnel = ctx.open(Fragile { at: 5 }).await.unwrap();
    let begin = Instant::now();
    let mut n = 0;
    let failure = loop {
        if let Err(f) = tunnel.send(n).await {
            break f;
        }
        match tunnel.recv().await {
            Ok(Some(echoed)) => {
                assert_eq!(echoed, n);
                n += 1;
            }
            Ok(None) => panic!("a crash is not a clean end"),
            Err(f) => break f,
        }
    };
    assert_eq!(failure.status(), edri::Status::Crashed, "{failure}");
    assert!(begin.elapsed() < Duration::from_secs(1), "{:?}", begin.elapsed());

    // A slow receiver: the sender keeps at most its window here and its window in flight.
    let window = 8;
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 5 }).window(window).await.unwrap().split();
    let mut peak = 0;
    for n in 0..200 {
        tx.send(n).await.unwrap();
        peak = peak.max(tx.buffered());
    }
    tx.close();
    assert_eq!(rx.recv().await.unwrap(), Some((200, 0)));
    println!("  slow receiver across routers: at most {peak} items buffered (window {window})");
    assert!(peak <= 2 * window, "{peak}");

    // 100 tunnels at once.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
            for n in 0..500 {
                tx.send(n).await.unwrap();
            }
            tx.close();
            rx.recv().await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Some((500, 0)));
    }
    // Every tunnel that ended is forgotten on this side (the acceptor's sides end with them).
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.switch().unwrap().tunnels > 0 {
        assert!(Instant::now() < deadline, "{:?}", running.switch().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The acceptor's router is killed mid-stream: the stream ends with an error once the
    // outage window is over, never a hang.
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
    tx.send(0).await.unwrap();
    t.kill();
    let begin = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    let failure = ended.expect("the stream ended").unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    println!(
        "  acceptor's router killed: the stream failed after {:.1?}: {failure}",
        begin.elapsed()
    );
    let sent = tx.send(1).await;
    assert!(sent.is_err(), "{sent:?}");
    running.shutdown().await.unwrap();
}

/// A tunnel through a link cut for 3 s: every item arrives once, in order.
async fn tunnel_outage() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let (_t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let running = ctl(&proxy.addr).await;
    wait_for_peers(&running, &["t"]).await;
    let ctx = running.ctx().clone();
    let (mut tx, mut rx) = ctx.open(Check { pause_ms: 0 }).await.unwrap().split();
    const COUNT: u64 = 6_000;
    let sender = tokio::spawn(async move {
        let begin = tokio::time::Instant::now();
        for n in 0..COUNT {
            tokio::time::sleep_until(begin + Duration::from_millis(n)).await;
            tx.send(n).await.unwrap();
        }
        tx.close();
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    sender.await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
    assert_eq!(report, Some((COUNT, 0)), "lost, duplicated or reordered items");
    let status = running.switch().unwrap();
    assert!(status.reconnects >= 1, "{status:?}");
    running.shutdown().await.unwrap();
}

/// A tunnel through a cut longer than the outage window: items were given up, so the tunnel
/// fails (on this side and on the acceptor's) instead of going on with a hole in its stream.
async fn tunnel_outage_beyond_window() {
    let (_switch, addr) = switch("127.0.0.1:0");
    let proxy = Proxy::start(addr.clone()).await;
    let (_t, ready) = router("t", "converter", &addr);
    assert_eq!(ready, "ready");
    let running = Edri::builder()
        .only_explicit()
        .manager(Ctl)
        .switch(
            edri::switch::Switch::new(&proxy.addr)
                .secret(SECRET)
                .id("ctl")
                .outage_window(Duration::from_secs(1)),
        )
        .start()
        .await
        .unwrap();
    wait_for_peers(&running, &["t"]).await;
    let (mut tx, mut rx) = running.ctx().open(Check { pause_ms: 0 }).await.unwrap().split();
    tx.send(0).await.unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let ended = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    let failure = ended.expect("the stream ended").unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(failure.message().contains("given up"), "{failure}");
    assert!(tx.send(2).await.is_err());
    let status = running.switch().unwrap();
    assert!(status.lost >= 1 && status.tunnels == 0, "{status:?}");
    running.shutdown().await.unwrap();
}

fn main() {
    support::run(vec![
        ("cross_router", || Box::pin(cross_router())),
        ("wrong_secret", || Box::pin(wrong_secret())),
        ("bounded_buffer_and_outage_window", || Box::pin(bounded_buffer_and_outage_window())),
        ("outage_proxy_cut", || Box::pin(outage(Outage::Proxy))),
        ("outage_switch_killed", || Box::pin(outage(Outage::KillSwitch))),
        ("tunnels", || Box::pin(tunnels())),
        ("tunnel_outage", || Box::pin(tunnel_outage())),
        ("tunnel_outage_beyond_window", || Box::pin(tunnel_outage_beyond_window())),
    ]);
}
