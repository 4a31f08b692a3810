//! What only the NATS transport has: messages from a raw NATS client on the application's
//! subjects, tunnels refused across routers, its status. Each case starts its own
//! `nats-server -js` (see `support/nats.rs`).

#![allow(missing_docs)]

mod support;

use async_nats::jetstream::context::Publish;
use edri::nats::Nats;
use edri::prelude::*;
use std::time::Duration;
use support::nats::{ACK_WAIT_ENV, NatsTransport, cluster_ports, start_cluster_node};
use support::transport::SECRET;
use support::*;

/// Garbage and oversize messages published by a raw client on the application's subjects
/// are dropped, counted and logged; the router goes on and loses nothing of the real events.
async fn bad_input(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let config = Nats::new(format!("nats://{}", hub.addr)).token(SECRET).id("ctl").max_event(4096);
    let builder = Edri::builder().only_explicit().manager(Ctl).manager(Counter::default());
    let running = builder.nats(config).start().await.expect("the receiving router");
    let sender = Edri::builder().only_explicit().manager(Echo::default());
    let sender = t.join(sender, &Join::new(&hub.addr, "s")).start().await.unwrap();
    wait_for_peers(t, &sender, &["ctl"]).await;

    let raw = async_nats::ConnectOptions::new()
        .token(SECRET.into())
        .connect(hub.addr.as_str())
        .await
        .expect("a raw NATS client");
    let js = async_nats::jetstream::new(raw.clone());
    let bad = [
        // No id at all.
        Publish::build().payload("garbage".into()),
        // A well-formed id, a payload that is no `Tick`.
        Publish::build().payload(Vec::new().into()).message_id("x/1/Tick/0"),
        // Larger than the receiver's `max_event`.
        Publish::build().payload(vec![7u8; 8192].into()).message_id("x/1/Tick/1"),
    ];
    for publish in bad {
        js.send_publish("edri.n.Tick", publish).await.unwrap().await.expect("stored");
    }
    // A request without a reply subject.
    raw.publish("edri.r.Report", "garbage".into()).await.unwrap();
    raw.flush().await.unwrap();
    // A request too short to hold its timeout: answered `invalid` at once, and counted.
    let short = raw.request("edri.r.Report", "ab".into());
    let answer = tokio::time::timeout(Duration::from_secs(10), short).await;
    let answer = answer.expect("answered in time").expect("answered");
    // A response is a tag byte (1: a failure), then the `Failure` in postcard.
    let (tag, failure) = answer.payload.split_first().expect("a response");
    assert_eq!(*tag, 1, "refused");
    let failure: edri::Failure = postcard::from_bytes(failure).unwrap();
    assert_eq!(failure.status(), edri::Status::Invalid, "{failure}");
    assert!(failure.to_string().contains("starts with its timeout"), "{failure}");

    for n in 0..100 {
        sender.ctx().notify(Tick { n, pad: vec![] }).await.unwrap();
    }
    let report = wait_for_count(running.ctx(), 100, Duration::from_secs(20)).await;
    assert_eq!((report.received, report.duplicates, report.out_of_order), (100, 0, 0));
    let status = running.nats().expect("joined through NATS");
    assert_eq!(status.decode_errors, 5, "{status:?}");
    assert!(status.connected && status.peers.iter().any(|p| p.id == "s" && p.connected));
    assert_eq!((status.lost, status.duplicates), (0, 0), "{status:?}");
    let metrics = running.metrics();
    assert!(metrics.contains("edri_nats_decode_errors_total 5"), "{metrics}");
    // Every answer to the raw client went out (the refusal above included).
    assert_eq!(status.responses_unsent, 0, "{status:?}");
    assert!(metrics.contains("edri_nats_responses_unsent_total 0"), "{metrics}");
    assert!(metrics.contains("edri_nats_delivered_total 100"), "{metrics}");
    let sent = sender.nats().unwrap();
    assert_eq!((sent.published, sent.buffered, sent.lost), (100, 0, 0), "{sent:?}");
    sender.shutdown().await.unwrap();
    running.shutdown().await.unwrap();
}

/// A tunnel whose acceptor is on another router is refused at once, saying why.
async fn tunnel_refused(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let (_b, ready) = router(t, &Join::new(&hub.addr, "b"), "converter");
    assert_eq!(ready, "ready");
    let running = ctl(t, &hub.addr).await;
    wait_for_peers(t, &running, &["b"]).await;
    let failure = running.ctx().open(Upper {}).await.map(drop).unwrap_err();
    assert_eq!(failure.status(), edri::Status::Unavailable, "{failure}");
    assert!(failure.message().contains("need the switch transport"), "{failure}");
    running.shutdown().await.unwrap();
}

/// 1 000 ticks/s to a router that handles ~400/s (its mailbox fills); it is killed with
/// SIGKILL after 3 s and restarted with the same id: its durable consumer hands it every
/// tick it had not acknowledged (acknowledged only once handled), so none is lost, and the
/// few handled twice are bounded by what it may hold unacknowledged.
async fn receiver_killed(t: &'static dyn Transport) {
    const COUNT: u64 = 4_000;
    const IN_FLIGHT: u32 = 512;
    let log = std::env::temp_dir().join(format!("edri-nats-killed-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let log_env = log.to_str().unwrap().to_owned();
    let env = [("EDRI_TEST_LOG", log_env.as_str()), (ACK_WAIT_ENV, "2000")];
    let hub = t.start_hub("127.0.0.1:0");
    let join_b = Join::new(&hub.addr, "b").in_flight(IN_FLIGHT);
    let (mut b, ready) = router_env(t, &join_b, "slowcounter", &env);
    assert_eq!(ready, "ready");
    let running = sender(t, &hub.addr, IN_FLIGHT).await;
    wait_for_peers(t, &running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = handled(&log).len() as u64;
    let progress = ctx.request(Progress {}).await.unwrap();
    assert!(progress.sent > before + 256, "the receiver kept up: {before} of {}", progress.sent);
    b.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_b, ready) = router_env(t, &join_b, "slowcounter", &env);
    assert_eq!(ready, "ready");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let seen = handled(&log);
        if seen.len() as u64 >= COUNT || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let missing: Vec<u64> = (0..COUNT).filter(|n| !seen.contains_key(n)).take(10).collect();
    assert!(missing.is_empty(), "ticks never handled (first 10): {missing:?}");
    let twice: u64 = seen.values().map(|n| n - 1).sum();
    println!("  handled before the kill: {before}, twice: {twice}");
    assert!(twice <= u64::from(IN_FLIGHT), "{twice} handled twice");
    let link = t.link(&running);
    assert_eq!((link.lost, link.buffered), (0, 0), "{link:?}");
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&log);
}

/// 1 000 ticks/s for 20 s to a router whose own link to NATS is cut for 10 s by a proxy:
/// JetStream keeps what it could not deliver, and the receiver gets every tick once.
async fn receiver_cut(t: &'static dyn Transport) {
    const COUNT: u64 = 20_000;
    let hub = t.start_hub("127.0.0.1:0");
    let proxy = Proxy::start(hub.addr.clone()).await;
    let env = [(ACK_WAIT_ENV, "3000")];
    let (_b, ready) = router_env(t, &Join::new(&proxy.addr, "b"), "counter", &env);
    assert_eq!(ready, "ready");
    let running = sender(t, &hub.addr, 4_096).await;
    wait_for_peers(t, &running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.restore();
    let report = wait_for_count(ctx, COUNT, Duration::from_secs(60)).await;
    println!("  {report:?}");
    assert_eq!(
        (report.received, report.duplicates, report.out_of_order, report.last),
        (COUNT, 0, 0, COUNT - 1),
        "lost, duplicated or reordered ticks"
    );
    let link = t.link(&running);
    assert_eq!(link.lost, 0, "{link:?}");
    running.shutdown().await.unwrap();
}

/// With NATS gone, publishes wait in the sender's buffer (bounded: then senders wait), and
/// beyond the outage window they are given up and counted as lost, not kept forever.
async fn bounded_buffer_while_nats_is_gone(t: &'static dyn Transport) {
    const BUFFER: usize = 256 << 10;
    let mut hub = t.start_hub("127.0.0.1:0");
    let (_b, ready) = router(t, &Join::new(&hub.addr, "b"), "counter");
    assert_eq!(ready, "ready");
    let join = Join::new(&hub.addr, "ctl").buffer(BUFFER).outage_window(Duration::from_secs(3));
    let running = ctl_with(t, &join, Edri::builder().only_explicit()).await;
    wait_for_peers(t, &running, &["b"]).await;
    hub.kill();
    let ctx = running.ctx();
    let accepted = fill_until_blocked(ctx).await;
    let link = t.link(&running);
    assert_eq!(link.buffered, accepted, "{link:?}");
    assert!(accepted * 1024 <= BUFFER as u64, "kept {accepted} KiB for a 256 KiB buffer");
    let limit = Duration::from_secs(15);
    let link = wait_for_link(t, &running, limit, "never given up", |l| l.buffered == 0).await;
    assert_eq!(link.lost, accepted, "{link:?}");
    let metrics = running.metrics();
    assert!(metrics.contains(&format!("edri_nats_lost_total {accepted}")), "{metrics}");
    running.shutdown().await.unwrap();
}

/// A three-node cluster with the stream replicated three times: the node the receiving
/// router is connected to is killed for 10 s during 1 000 events/s for 20 s; the receiver
/// fails over to another node and gets every tick once (a few out of order).
async fn cluster_node_killed(t: &'static dyn Transport) {
    const COUNT: u64 = 20_000;
    let nodes = cluster_ports();
    let mut hubs: Vec<_> = (0..3).map(|i| start_cluster_node(&nodes, i)).collect();
    let raw = async_nats::ConnectOptions::new()
        .token(SECRET.into())
        .connect(hubs[0].addr.as_str())
        .await
        .expect("a raw NATS client");
    let js = async_nats::jetstream::new(raw);
    // The stream and the bucket, replicated on the three nodes, once the cluster has formed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stream = async_nats::jetstream::stream::Config {
            name: "edri_notifications".into(),
            subjects: vec!["edri.n.>".into()],
            retention: async_nats::jetstream::stream::RetentionPolicy::Interest,
            max_age: Duration::from_secs(60),
            num_replicas: 3,
            ..Default::default()
        };
        let bucket = async_nats::jetstream::kv::Config {
            bucket: "edri_routers".into(),
            num_replicas: 3,
            ..Default::default()
        };
        let made = match js.get_or_create_stream(stream).await {
            Ok(_) => js.create_key_value(bucket).await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match made {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!("no cluster: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let (_b, ready) = router(t, &Join::new(&hubs[1].addr, "b"), "counter");
    assert_eq!(ready, "ready", "the receiving router did not start");
    let running = sender(t, &hubs[0].addr, 4_096).await;
    wait_for_peers(t, &running, &["b"]).await;
    let ctx = running.ctx();
    ctx.request(StartStream { first: 0, count: COUNT, per_sec: 1_000 }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    hubs[1].kill();
    tokio::time::sleep(Duration::from_secs(10)).await;
    hubs[1] = start_cluster_node(&nodes, 1);
    let report = wait_for_count(ctx, COUNT, Duration::from_secs(60)).await;
    println!("  {report:?}");
    // The node the receiver is connected to dies: what NATS had sent it on that link comes
    // again after `ack_wait`, and the later ticks wait for it. None lost, none handled twice,
    // none out of order.
    assert_eq!((report.received, report.duplicates), (COUNT, 0), "lost or duplicated ticks");
    assert_eq!(report.out_of_order, 0, "{report:?}");
    assert_eq!(t.link(&running).lost, 0);
    running.shutdown().await.unwrap();
}

/// A router whose id is not a valid NATS name fails to start, saying so.
async fn invalid_id(t: &'static dyn Transport) {
    let hub = t.start_hub("127.0.0.1:0");
    let config = Nats::new(format!("nats://{}", hub.addr)).token(SECRET).id("a.b");
    let error = Edri::builder().only_explicit().manager(Ctl).nats(config).start().await;
    let error = error.map(drop).unwrap_err().to_string();
    assert!(error.contains("router id `a.b`"), "{error}");
}

fn main() {
    support::run(
        &[&NatsTransport],
        &[
            ("bad_input", |t| Box::pin(bad_input(t))),
            ("tunnel_refused", |t| Box::pin(tunnel_refused(t))),
            ("invalid_id", |t| Box::pin(invalid_id(t))),
            ("receiver_killed_gets_what_it_had_not_handled", |t| Box::pin(receiver_killed(t))),
            ("receiver_link_cut", |t| Box::pin(receiver_cut(t))),
            ("bounded_buffer_while_nats_is_gone", |t| {
                Box::pin(bounded_buffer_while_nats_is_gone(t))
            }),
            ("cluster_node_killed", |t| Box::pin(cluster_node_killed(t))),
        ],
    );
}
