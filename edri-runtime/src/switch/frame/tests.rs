//! Tests of the parent module.

use super::*;
use crate::framing::{decode, frame, read_body};

/// A small deterministic generator, so that a failing case can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn tick() -> CatalogEntry {
    CatalogEntry { name: "Tick".into(), kind: "notification".into(), fingerprint: 9 }
}

fn samples() -> Vec<Vec<u8>> {
    let item = encode_item(&Item::Notify { event: 0, payload: &[1, 2, 3], trace: None }).unwrap();
    let mut items = item.clone();
    items.extend_from_slice(&item);
    let open = Item::Open {
        tunnel: 3,
        epoch: 4,
        event: 1,
        timeout_ms: 5,
        window: 16,
        payload: &[7],
        trace: Some(TraceContext { trace: 1 << 100, span: 42 }),
    };
    items.extend_from_slice(&encode_item(&open).unwrap());
    let chunk = TunnelMessage::Chunk(&[1, 2, 3, 4]);
    for message in [chunk, TunnelMessage::Credit(4), TunnelMessage::End(None)] {
        let tunnel = Item::Tunnel { tunnel: 3, epoch: 4, from_opener: true, message };
        items.extend_from_slice(&encode_item(&tunnel).unwrap());
    }
    vec![
        frame(&Hello { protocol: PROTOCOL, router: "a".into(), epoch: 7, nonce: [3; NONCE] })
            .unwrap(),
        frame(&Challenge::Ok { protocol: 1, nonce: [1; NONCE], proof: [2; NONCE] }).unwrap(),
        frame(&ToSwitch::Join {
            catalog: vec![tick()],
            subscribes: vec!["Tick".into()],
            responds: vec![],
        })
        .unwrap(),
        frame(&ToSwitch::Data { to: "b", epoch: 1, base: 0, first: 0, count: 6, items: &items })
            .unwrap(),
        frame(&FromSwitch::Data {
            from: "a",
            epoch: 1,
            base: 0,
            first: 0,
            count: 6,
            items: &items,
        })
        .unwrap(),
        frame(&FromSwitch::PeerUp(PeerInfo {
            id: "b".into(),
            epoch: 2,
            catalog: vec![tick()],
            subscribes: vec!["Tick".into()],
            responds: vec!["Get".into()],
        }))
        .unwrap(),
    ]
}

/// Every decoder of the protocol, fed `body`: none may panic.
fn decode_all(body: &[u8]) {
    let _ = decode::<Hello>(body);
    let _ = decode::<Challenge>(body);
    let _ = decode::<Proof>(body);
    let _ = decode::<Verdict>(body);
    let _ = decode::<ToSwitch<'_>>(body);
    if let Ok(FromSwitch::Data { items, count, .. }) = decode::<FromSwitch<'_>>(body)
        && let Ok(ranges) = split_items(items, count)
    {
        for r in ranges {
            let _ = decode::<Item<'_>>(&items[r]);
        }
    }
    let _ = split_items(body, (body.len() % 7) as u32);
    for r in split_items(body, 1).unwrap_or_default() {
        let _ = decode::<Item<'_>>(&body[r]);
    }
}

#[test]
fn frames_round_trip() {
    let item = Item::Request {
        call: 5,
        epoch: 6,
        event: 3,
        timeout_ms: 100,
        payload: &[9, 9],
        trace: None,
    };
    let bytes = encode_item(&item).unwrap();
    let ranges = split_items(&bytes, 1).unwrap();
    assert_eq!(decode::<Item<'_>>(&bytes[ranges[0].clone()]).unwrap(), item);
    let failure = Item::Response { call: 1, epoch: 2, result: Err(Failure::timeout("late")) };
    let bytes = encode_item(&failure).unwrap();
    assert_eq!(
        decode::<Item<'_>>(&bytes[split_items(&bytes, 1).unwrap()[0].clone()]).unwrap(),
        failure
    );
    let messages = [
        TunnelMessage::Verdict(Ok(())),
        TunnelMessage::Verdict(Err(Failure::forbidden("no"))),
        TunnelMessage::Chunk(&[0; 300]),
        TunnelMessage::Credit(7),
        TunnelMessage::End(Some(Failure::crashed("boom"))),
        TunnelMessage::Stop(Failure::unavailable("gone")),
    ];
    for message in messages {
        let item = Item::Tunnel { tunnel: 9, epoch: 8, from_opener: false, message };
        let bytes = encode_item(&item).unwrap();
        let range = split_items(&bytes, 1).unwrap().remove(0);
        assert_eq!(decode::<Item<'_>>(&bytes[range]).unwrap(), item);
    }
    // An item too large for a frame is refused before it is kept.
    let big = vec![0u8; MAX_ITEM + 1];
    let err = encode_item(&Item::Notify { event: 0, payload: &big, trace: None }).unwrap_err();
    assert!(err.message().contains("above the limit"), "{err}");
    // Wrong counts and truncated items are errors, not panics.
    assert!(split_items(&bytes, 2).is_err());
    assert!(split_items(&bytes[..bytes.len() - 1], 1).is_err());
    // Trailing bytes after a message are refused.
    let mut f = frame(&ToSwitch::Ping).unwrap();
    f.push(0);
    assert!(decode::<ToSwitch<'_>>(&f[4..]).is_err());
}

#[test]
fn data_frames_pushed_in_parts_are_the_same_bytes() {
    let parts: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; i * 7 % 500]).collect();
    let mut all = Vec::new();
    for part in &parts {
        push_varint(&mut all, part.len() as u64);
        all.extend_from_slice(part);
    }
    let mut whole = vec![9];
    let data = ToSwitch::Data { to: "b", epoch: 3, base: 4, first: 5, count: 300, items: &all };
    push_frame(&mut whole, &data).unwrap();
    let mut pieces = vec![9];
    push_data(&mut pieces, "b", (3, 4, 5), 300, parts.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(whole, pieces);
    for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
        let mut v = Vec::new();
        push_varint(&mut v, n);
        assert_eq!(v.len(), varint_len(n), "{n}");
    }
}

#[test]
fn proofs_depend_on_everything() {
    let t = |role, first: &'static [u8], second: &'static [u8], router, epoch| Transcript {
        role,
        first,
        second,
        router,
        epoch,
    };
    let p = t("router", b"n1", b"n2", "a", 1).proof(b"s");
    assert!(t("router", b"n1", b"n2", "a", 1).verify(b"s", &p));
    assert!(!t("router", b"n1", b"n2", "a", 1).verify(b"t", &p));
    assert!(!t("switch", b"n1", b"n2", "a", 1).verify(b"s", &p));
    assert!(!t("router", b"n2", b"n1", "a", 1).verify(b"s", &p));
    assert!(!t("router", b"n1", b"n2", "b", 1).verify(b"s", &p));
    assert!(!t("router", b"n1", b"n2", "a", 2).verify(b"s", &p));
    assert_ne!(nonce(), nonce());
}

/// The decoder property test: random bytes, and valid frames with random bytes flipped,
/// truncated or extended, through every decoder. Bounded by `EDRI_FUZZ_SECS` (default 3 s)
/// and 2 million cases.
#[test]
fn decoders_never_panic_on_garbage() {
    let secs: u64 = std::env::var("EDRI_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = XorShift(seed);
    let samples = samples();
    let mut cases = 0u64;
    while cases < 2_000_000 && (!cases.is_multiple_of(1024) || std::time::Instant::now() < deadline)
    {
        cases += 1;
        let body = match rng.next() % 4 {
            0 => rng.bytes(64),
            1 => {
                let mut s = samples[(rng.next() as usize) % samples.len()][4..].to_vec();
                for _ in 0..=(rng.next() % 4) {
                    if !s.is_empty() {
                        let i = (rng.next() as usize) % s.len();
                        s[i] = rng.next() as u8;
                    }
                }
                s
            }
            2 => {
                let s = &samples[(rng.next() as usize) % samples.len()][4..];
                s[..(rng.next() as usize) % (s.len() + 1)].to_vec()
            }
            _ => {
                let mut s = samples[(rng.next() as usize) % samples.len()][4..].to_vec();
                s.extend(rng.bytes(16));
                s
            }
        };
        std::panic::catch_unwind(|| decode_all(&body)).unwrap_or_else(|_| {
            panic!("a decoder panicked (seed {seed}) on {body:?}");
        });
    }
    assert!(cases > 1000, "only {cases} cases ran");
}

#[tokio::test]
async fn oversize_and_truncated_frames_are_errors() {
    use tokio::io::AsyncWriteExt;
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    a.write_all(&(HANDSHAKE_LIMIT as u32 + 1).to_le_bytes()).await.unwrap();
    assert!(matches!(read_body(&mut b, HANDSHAKE_LIMIT).await, Err(FrameError::TooLarge(_))));
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    a.write_all(&10u32.to_le_bytes()).await.unwrap();
    a.write_all(&[1, 2, 3]).await.unwrap();
    drop(a);
    assert!(matches!(read_body(&mut b, HANDSHAKE_LIMIT).await, Err(FrameError::Io(_))));
}
