//! Unit tests of the switch server: hand-made clients speaking the protocol.

use super::*;
use crate::switch::frame::{Item, encode_item};

const SECRET: &str = "right secret";

async fn server() -> String {
    let server = Server::bind("127.0.0.1:0", SECRET).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.run());
    addr
}

type Link = (BufReader<OwnedReadHalf>, OwnedWriteHalf);

/// A client speaking the protocol by hand: authenticates with `secret` and joins.
async fn join(
    addr: &str,
    secret: &str,
    id: &str,
    catalog: Vec<CatalogEntry>,
    subscribes: &[&str],
) -> Result<(Link, Vec<PeerInfo>), String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let ours = nonce();
    let hello = Hello { protocol: PROTOCOL, router: id.into(), epoch: 1, nonce: ours };
    write.write_all(&frame(&hello).unwrap()).await.unwrap();
    let Challenge::Ok { nonce: theirs, .. } =
        decode(&read_body(&mut read, HANDSHAKE_LIMIT).await.unwrap()).unwrap()
    else {
        return Err("challenge refused".into());
    };
    let proof = Transcript::of("router", &theirs, &ours, id, 1).proof(secret.as_bytes());
    write.write_all(&frame(&Proof { proof }).unwrap()).await.unwrap();
    if let Verdict::Refused { reason } =
        decode(&read_body(&mut read, HANDSHAKE_LIMIT).await.unwrap()).unwrap()
    {
        return Err(reason);
    }
    let subscribes = subscribes.iter().map(|s| (*s).to_owned()).collect();
    let join = ToSwitch::Join { catalog, subscribes, responds: vec![] };
    write.write_all(&frame(&join).unwrap()).await.unwrap();
    match decode(&read_body(&mut read, MAX_FRAME).await.unwrap()).unwrap() {
        FromSwitch::Joined { peers } => Ok(((read, write), peers)),
        FromSwitch::Refused { reason } => Err(reason),
        other => Err(format!("unexpected {other:?}")),
    }
}

fn tick(fingerprint: u64) -> Vec<CatalogEntry> {
    vec![CatalogEntry { name: "Tick".into(), kind: "notification".into(), fingerprint }]
}

fn data_frame(to: &str) -> Vec<u8> {
    let item = encode_item(&Item::Notify { event: 0, payload: &[0, 0], trace: None }).unwrap();
    frame(&ToSwitch::Data { to, epoch: 1, base: 0, first: 0, count: 1, items: &item }).unwrap()
}

/// What `link` receives within `window`, other than pings and peer news.
async fn data_received(link: &mut Link, window: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok(body)) =
        tokio::time::timeout_at(deadline, read_body(&mut link.0, MAX_FRAME)).await
    {
        match decode::<FromSwitch<'_>>(&body).unwrap() {
            FromSwitch::Data { from, .. } => got.push(from.to_owned()),
            FromSwitch::Ping | FromSwitch::PeerUp(_) | FromSwitch::PeerDown { .. } => {}
            other => got.push(format!("{other:?}")),
        }
    }
    got
}

#[tokio::test]
async fn routers_are_forwarded_data_addressed_to_them() {
    let addr = server().await;
    let (mut b, peers) = join(&addr, SECRET, "b", tick(1), &["Tick"]).await.unwrap();
    assert!(peers.is_empty());
    let (mut a, peers) = join(&addr, SECRET, "a", tick(1), &[]).await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].id.as_str(), peers[0].subscribes.as_slice()),
        ("b", &["Tick".to_owned()][..])
    );
    a.1.write_all(&data_frame("b")).await.unwrap();
    // Nobody by that name: dropped, the connection stays.
    a.1.write_all(&data_frame("nobody")).await.unwrap();
    assert_eq!(data_received(&mut b, Duration::from_millis(300)).await, ["a"]);
    assert!(data_received(&mut a, Duration::from_millis(100)).await.is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_refused_before_anything_is_forwarded() {
    let addr = server().await;
    let (mut b, _) = join(&addr, SECRET, "b", tick(1), &["Tick"]).await.unwrap();
    // The intruder pipelines a data frame right behind its (wrong) proof.
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let ours = nonce();
    let hello = Hello { protocol: PROTOCOL, router: "x".into(), epoch: 1, nonce: ours };
    write.write_all(&frame(&hello).unwrap()).await.unwrap();
    let Challenge::Ok { nonce: theirs, proof, .. } =
        decode(&read_body(&mut read, HANDSHAKE_LIMIT).await.unwrap()).unwrap()
    else {
        panic!("no challenge")
    };
    // The switch proved itself to a client that knows the secret, not to this one.
    assert!(!Transcript::of("switch", &ours, &theirs, "x", 1).verify(b"guess", &proof));
    let proof = Transcript::of("router", &theirs, &ours, "x", 1).proof(b"guess");
    let mut bytes = frame(&Proof { proof }).unwrap();
    bytes.extend(
        frame(&ToSwitch::Join { catalog: vec![], subscribes: vec![], responds: vec![] }).unwrap(),
    );
    bytes.extend(data_frame("b"));
    write.write_all(&bytes).await.unwrap();
    let verdict: Verdict = decode(&read_body(&mut read, HANDSHAKE_LIMIT).await.unwrap()).unwrap();
    assert!(
        matches!(&verdict, Verdict::Refused { reason } if reason.contains("authentication failed")),
        "{verdict:?}"
    );
    assert!(matches!(
        read_body(&mut read, MAX_FRAME).await,
        Err(FrameError::Closed | FrameError::Io(_))
    ));
    assert!(data_received(&mut b, Duration::from_millis(300)).await.is_empty());
    // A client with the right secret still joins.
    join(&addr, SECRET, "c", tick(1), &[]).await.unwrap();
}

#[tokio::test]
async fn an_event_defined_differently_is_refused_by_name() {
    let addr = server().await;
    let _a = join(&addr, SECRET, "a", tick(1), &[]).await.unwrap();
    let reason = join(&addr, SECRET, "b", tick(2), &[]).await.unwrap_err();
    assert!(reason.contains("`Tick`") && reason.contains("router `a`"), "{reason}");
    // The same definition joins.
    join(&addr, SECRET, "b", tick(1), &[]).await.unwrap();
}

#[tokio::test]
async fn a_real_router_with_a_conflicting_event_fails_to_start() {
    let addr = server().await;
    let health = vec![CatalogEntry {
        name: "edri.HealthCheck".into(),
        kind: "request".into(),
        fingerprint: 0,
    }];
    let _a = join(&addr, SECRET, "a", health, &[]).await.unwrap();
    let started = crate::Edri::builder()
        .only_explicit()
        .manager(crate::health::Health)
        .switch(crate::switch::Switch::new(addr.clone()).secret(SECRET).id("r"))
        .start()
        .await;
    let error = started.unwrap_err().to_string();
    assert!(error.contains("`edri.HealthCheck`") && error.contains("refused"), "{error}");
    let wrong = crate::Edri::builder()
        .only_explicit()
        .manager(crate::health::Health)
        .switch(crate::switch::Switch::new(addr).secret("wrong").id("w"))
        .start()
        .await;
    let error = wrong.unwrap_err().to_string();
    assert!(error.contains("authentication failed"), "{error}");
}

#[tokio::test]
async fn garbage_never_takes_the_switch_down() {
    let addr = server().await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..200 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let bytes: Vec<u8> = match i % 4 {
            // Random bytes.
            0 => (0..(next() % 300)).map(|_| next() as u8).collect(),
            // An oversize length before authentication.
            1 => (HANDSHAKE_LIMIT as u32 + 1).to_le_bytes().to_vec(),
            // A valid length with garbage inside.
            2 => {
                let mut b = 40u32.to_le_bytes().to_vec();
                b.extend((0..40).map(|_| next() as u8));
                b
            }
            // A truncated hello.
            _ => {
                let hello =
                    Hello { protocol: PROTOCOL, router: "g".into(), epoch: 1, nonce: [1; 32] };
                let f = frame(&hello).unwrap();
                f[..f.len() / 2].to_vec()
            }
        };
        let _ = stream.write_all(&bytes).await;
        drop(stream);
    }
    let (mut link, _) = join(&addr, SECRET, "ok", tick(1), &[]).await.unwrap();
    assert!(data_received(&mut link, Duration::from_millis(50)).await.is_empty());
}

#[tokio::test]
async fn the_status_counts_routers_traffic_and_refusals() {
    let server = Server::bind("127.0.0.1:0", SECRET).await.unwrap();
    let status = server.status_handle();
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.run());
    let (mut b, _) = join(&addr, SECRET, "b", tick(1), &["Tick"]).await.unwrap();
    let (mut a, _) = join(&addr, SECRET, "a", tick(1), &[]).await.unwrap();
    assert!(join(&addr, "wrong", "w", tick(1), &[]).await.is_err());
    assert!(join(&addr, SECRET, "c", tick(2), &[]).await.is_err());
    let data = data_frame("b");
    a.1.write_all(&data).await.unwrap();
    assert_eq!(data_received(&mut b, Duration::from_millis(300)).await, ["a"]);

    let now = status.status();
    let ids: Vec<&str> = now.routers.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(now.routers.iter().all(|r| r.addr.starts_with("127.0.0.1:")));
    assert_eq!(now.joins, 2);
    assert_eq!(now.refusals, 2);
    let reasons: Vec<(&str, u64)> =
        now.refusals_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(reasons, [("catalog", 1), ("secret", 1)]);
    let a_link = &now.routers[0].traffic;
    assert_eq!((a_link.frames_in, a_link.bytes_in), (1, data.len() as u64));
    // `b` got `Joined`, news of `a` joining, and the data frame.
    assert!(now.routers[1].traffic.frames_out >= 3, "{now:?}");
    assert!(now.traffic.bytes_out >= now.routers[1].traffic.bytes_out);
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status.status().routers.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "`a` is still listed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
