//! Tunnels across routers: long streams, credit flow control, rejection, crashes of the
//! acceptor, and cuts of the link.

use super::routers;
use crate::support::*;
use edri::prelude::*;
use std::time::{Duration, Instant};

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
pub async fn tunnels(transport: &'static dyn Transport) {
    let hub = transport.start_hub("127.0.0.1:0");
    let (mut t, ready) = router(transport, &Join::new(&hub.addr, "t"), "converter");
    assert_eq!(ready, "ready");
    let join = Join::new(&hub.addr, "ctl").outage_window(Duration::from_secs(2));
    let running = ctl_with(transport, &join, Edri::builder().only_explicit()).await;
    wait_for_peers(transport, &running, &["t"]).await;
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
    while transport.link(&running).tunnels > 0 {
        assert!(Instant::now() < deadline, "{:?}", transport.link(&running));
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
pub async fn tunnel_outage(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let proxy = Proxy::start(hub.addr.clone()).await;
    let _routers = routers(t, &hub.addr, &[("t", "converter")]);
    let running = ctl(t, &proxy.addr).await;
    wait_for_peers(t, &running, &["t"]).await;
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
    let link = t.link(&running);
    assert!(link.reconnects >= 1, "{link:?}");
    running.shutdown().await.unwrap();
}

/// A tunnel through a cut longer than the outage window: items were given up, so the tunnel
/// fails (on this side and on the acceptor's) instead of going on with a hole in its stream.
pub async fn tunnel_outage_beyond_window(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let proxy = Proxy::start(hub.addr.clone()).await;
    let _routers = routers(t, &hub.addr, &[("t", "converter")]);
    let join = Join::new(&proxy.addr, "ctl").outage_window(Duration::from_secs(1));
    let running = ctl_with(t, &join, Edri::builder().only_explicit()).await;
    wait_for_peers(t, &running, &["t"]).await;
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
    let link = t.link(&running);
    assert!(link.lost >= 1 && link.tunnels == 0, "{link:?}");
    running.shutdown().await.unwrap();
}
