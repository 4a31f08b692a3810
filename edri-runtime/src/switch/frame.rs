//! The switch protocol: what routers and the switch say to each other.
//!
//! Every frame is a little-endian `u32` length and that many bytes of postcard
//! ([`crate::framing`]), as between a router and its worker processes. A connection goes through three stages:
//!
//! 1. **Authentication**, with small fixed types only ([`Hello`], [`Challenge`], [`Proof`],
//!    [`Verdict`]), each frame at most [`HANDSHAKE_LIMIT`] bytes. Both sides prove that they
//!    know the shared secret (HMAC-SHA256 over both nonces), so nothing a stranger sends is
//!    ever decoded as anything else.
//! 2. **Join**: the router sends its catalog (name, kind and fingerprint of every event it
//!    knows) and what it subscribes to and answers; the switch refuses an event whose
//!    fingerprint differs from another router's, or welcomes the router with the other routers.
//! 3. **Traffic**: [`ToSwitch`] / [`FromSwitch`]. Events travel in [`Data`](ToSwitch::Data)
//!    frames addressed to one router; the switch forwards their `items` without looking
//!    inside. Each (sender, epoch) → receiver stream is numbered; receivers acknowledge what
//!    they delivered and ask for a resend when they see a gap.

use crate::Failure;
use crate::framing::{FrameError, MAX_FRAME, push_frame, seal};
pub(crate) use crate::peering::CatalogEntry;
use crate::trace::TraceContext;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

/// Version of the switch protocol; both sides must speak the same one.
pub const PROTOCOL: u32 = 3;

/// The largest item (one event, or one tunnel item) between routers: a frame's limit minus room
/// for the frame's header.
pub(crate) const MAX_ITEM: usize = MAX_FRAME - 4096;

/// The largest frame accepted before the peer is authenticated.
pub(crate) const HANDSHAKE_LIMIT: usize = 4096;

/// Length of nonces and proofs.
pub(crate) const NONCE: usize = 32;

/// Router → switch, the first frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) protocol: u32,
    pub(crate) router: String,
    pub(crate) epoch: u64,
    pub(crate) nonce: [u8; NONCE],
}

/// Switch → router, the answer to [`Hello`]: the switch's nonce and its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Challenge {
    Ok { protocol: u32, nonce: [u8; NONCE], proof: [u8; NONCE] },
    Refused { reason: String },
}

/// Router → switch: the router's proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Proof {
    pub(crate) proof: [u8; NONCE],
}

/// Switch → router: the end of authentication.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Verdict {
    Accepted,
    Refused { reason: String },
}

/// A router as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerInfo {
    pub(crate) id: String,
    pub(crate) epoch: u64,
    /// Notifications it has subscribers for.
    pub(crate) subscribes: Vec<String>,
    /// Requests it answers.
    pub(crate) responds: Vec<String>,
}

/// Router → switch, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToSwitch<'a> {
    /// The first frame after authentication.
    Join { catalog: Vec<CatalogEntry>, subscribes: Vec<String>, responds: Vec<String> },
    /// Items `first..first + count` of this router's stream to router `to`; everything below
    /// `base` was acknowledged (or given up) already.
    Data {
        #[serde(borrow)]
        to: &'a str,
        epoch: u64,
        base: u64,
        first: u64,
        count: u32,
        #[serde(borrow, serialize_with = "raw")]
        items: &'a [u8],
    },
    /// Everything below `next` of router `to`'s stream (of its epoch `epoch`) was delivered.
    Ack {
        #[serde(borrow)]
        to: &'a str,
        epoch: u64,
        next: u64,
    },
    /// A gap: router `to` should send its stream again from `from`.
    Resend {
        #[serde(borrow)]
        to: &'a str,
        epoch: u64,
        from: u64,
    },
    /// Nothing to say; the link is alive.
    Ping,
    /// The router is stopping for good: tell the others to forget it.
    Leave,
}

/// Switch → router, once joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FromSwitch<'a> {
    /// The join was accepted; these routers are connected now.
    Joined { peers: Vec<PeerInfo> },
    /// The join was refused.
    Refused { reason: String },
    /// A router joined (or came back).
    PeerUp(PeerInfo),
    /// A router's connection was lost; it may come back.
    PeerDown { id: String },
    /// A router left for good.
    PeerGone { id: String },
    /// Items of router `from`'s stream to this router (see [`ToSwitch::Data`]).
    Data {
        #[serde(borrow)]
        from: &'a str,
        epoch: u64,
        base: u64,
        first: u64,
        count: u32,
        #[serde(borrow, serialize_with = "raw")]
        items: &'a [u8],
    },
    /// Router `from` delivered everything below `next` of this router's stream of `epoch`.
    Ack {
        #[serde(borrow)]
        from: &'a str,
        epoch: u64,
        next: u64,
    },
    /// Router `from` asks for this router's stream (of `epoch`) again from `from_seq`.
    Resend {
        #[serde(borrow)]
        from: &'a str,
        epoch: u64,
        from_seq: u64,
    },
    /// Nothing to say; the link is alive.
    Ping,
}

/// One event in a stream. In a `Data` frame's `items`, each item is preceded by its length
/// (a postcard varint), so that a bad item can be refused on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Item<'a> {
    /// `trace`, here and in `Request` and `Open`: the sending handler's trace link
    /// ([`crate::trace`]).
    Notify {
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow, serialize_with = "raw")]
        payload: &'a [u8],
        trace: Option<TraceContext>,
    },
    Request {
        call: u64,
        /// The requester's epoch: a response for another incarnation is dropped.
        epoch: u64,
        #[serde(borrow)]
        event: &'a str,
        timeout_ms: u64,
        #[serde(borrow, serialize_with = "raw")]
        payload: &'a [u8],
        trace: Option<TraceContext>,
    },
    Response {
        call: u64,
        epoch: u64,
        #[serde(borrow, serialize_with = "raw_result")]
        result: Result<&'a [u8], Failure>,
    },
    /// A tunnel opened by the sending router (its `epoch`), for the acceptor of `event`.
    Open {
        tunnel: u64,
        epoch: u64,
        #[serde(borrow)]
        event: &'a str,
        timeout_ms: u64,
        window: u32,
        #[serde(borrow, serialize_with = "raw")]
        payload: &'a [u8],
        trace: Option<TraceContext>,
    },
    /// A message of tunnel `tunnel` opened by a router of epoch `epoch`; `from_opener` tells
    /// which side sent it.
    Tunnel {
        tunnel: u64,
        epoch: u64,
        from_opener: bool,
        #[serde(borrow)]
        message: TunnelMessage<'a>,
    },
}

/// What travels on a tunnel (see [`crate::tunnel::remote`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TunnelMessage<'a> {
    Verdict(Result<(), Failure>),
    Chunk(#[serde(borrow, serialize_with = "raw")] &'a [u8]),
    Credit(u32),
    End(Option<Failure>),
    Stop(Failure),
}

/// Bytes as one length-prefixed run (what serde does for `&[u8]` is a sequence of `u8`s:
/// the same encoding in postcard, written one byte at a time).
fn raw<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// [`raw`] inside a `Result`.
fn raw_result<S: serde::Serializer>(
    result: &Result<&[u8], Failure>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Raw<'a>(&'a [u8]);
    impl Serialize for Raw<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }
    match result {
        Ok(bytes) => serializer.serialize_newtype_variant("Result", 0, "Ok", &Raw(bytes)),
        Err(failure) => serializer.serialize_newtype_variant("Result", 1, "Err", failure),
    }
}

/// An item's bytes, length-prefixed, ready to go into `items`.
///
/// # Errors
/// `Invalid` when the item cannot be serialized or is larger than [`MAX_ITEM`]: refused here,
/// it never reaches the stream (where it could only be refused again and again).
pub(crate) fn encode_item(item: &Item<'_>) -> Result<Vec<u8>, Failure> {
    let size = postcard::experimental::serialized_size(item)
        .map_err(|e| Failure::invalid(format!("cannot serialize: {e}")))?;
    if size > MAX_ITEM {
        return Err(Failure::invalid(format!(
            "an event of {size} bytes is above the limit of {MAX_ITEM} bytes between routers \
             (split it, e.g. into the items of a tunnel)"
        )));
    }
    let mut out = Vec::with_capacity(size + 5);
    push_varint(&mut out, size as u64);
    postcard::to_io(item, &mut out)
        .map_err(|e| Failure::invalid(format!("cannot serialize: {e}")))?;
    Ok(out)
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Splits a `Data` frame's `items` into the bytes of each item (not yet decoded).
///
/// # Errors
/// When a length prefix is malformed or runs past the end, or the count is wrong: the frame
/// cannot be cut into items at all.
pub(crate) fn split_items(items: &[u8], count: u32) -> Result<Vec<std::ops::Range<usize>>, String> {
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0;
    while at < items.len() {
        let (len, used) = read_varint(&items[at..]).ok_or("malformed item length")?;
        let start = at + used;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= items.len())
            .ok_or("an item runs past the end of its frame")?;
        out.push(start..end);
        at = end;
        if out.len() > count as usize {
            break;
        }
    }
    if out.len() == count as usize {
        Ok(out)
    } else {
        Err(format!("the frame announces {count} items but holds {}", out.len()))
    }
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// Pushes a `Data` frame whose items are `items` one after the other (`total` bytes in all),
/// without gathering them into one buffer first: the same bytes as [`push_frame`] of
/// `ToSwitch::Data { .., items: &all }`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_data<'a>(
    out: &mut Vec<u8>,
    to: &str,
    epoch: u64,
    base: u64,
    first: u64,
    count: u32,
    items: impl Iterator<Item = &'a [u8]>,
    total: usize,
) -> Result<(), FrameError> {
    let at = out.len();
    push_frame(out, &ToSwitch::Data { to, epoch, base, first, count, items: &[] })?;
    // `items` is the last field: the header ends with the length of an empty run, one 0 byte.
    if out.pop() != Some(0) {
        out.truncate(at);
        return Err(FrameError::Io(std::io::Error::other("unexpected Data header")));
    }
    push_varint(out, total as u64);
    out.reserve(total);
    for item in items {
        out.extend_from_slice(item);
    }
    seal(out, at)
}

/// A fresh random nonce.
pub(crate) fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    // The system's random source failing is not recoverable; fall back to the clock and pid
    // mixed through the hash rather than panicking.
    if getrandom::fill(&mut n).is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        let t = Transcript { role: "nonce", first: &[], second: &[], router: "", epoch: 0 };
        n = t.proof(seed.as_bytes());
    }
    n
}

/// What a proof covers: a role, both nonces and the router's identity.
pub(crate) struct Transcript<'a> {
    pub(crate) role: &'a str,
    pub(crate) first: &'a [u8],
    pub(crate) second: &'a [u8],
    pub(crate) router: &'a str,
    pub(crate) epoch: u64,
}

impl<'a> Transcript<'a> {
    /// The transcript of `role`'s proof.
    pub(crate) fn of(
        role: &'a str,
        first: &'a [u8; NONCE],
        second: &'a [u8; NONCE],
        router: &'a str,
        epoch: u64,
    ) -> Self {
        Self { role, first, second, router, epoch }
    }

    fn mac(&self, secret: &[u8]) -> Hmac<sha2::Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        let parts = [b"edri-switch/1".as_slice(), self.role.as_bytes(), self.first, self.second];
        for part in parts.into_iter().chain([self.router.as_bytes()]) {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.update(&self.epoch.to_le_bytes());
        mac
    }

    /// HMAC-SHA256 of the transcript under `secret`.
    pub(crate) fn proof(&self, secret: &[u8]) -> [u8; NONCE] {
        self.mac(secret).finalize().into_bytes().into()
    }

    /// Whether `given` is the proof of this transcript under `secret` (constant time).
    pub(crate) fn verify(&self, secret: &[u8], given: &[u8; NONCE]) -> bool {
        self.mac(secret).verify_slice(given).is_ok()
    }
}

#[cfg(test)]
mod tests {
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

    fn samples() -> Vec<Vec<u8>> {
        let item =
            encode_item(&Item::Notify { event: "Tick", payload: &[1, 2, 3], trace: None }).unwrap();
        let mut items = item.clone();
        items.extend_from_slice(&item);
        let open = Item::Open {
            tunnel: 3,
            epoch: 4,
            event: "Upper",
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
                catalog: vec![CatalogEntry {
                    name: "Tick".into(),
                    kind: "notification".into(),
                    fingerprint: 9,
                }],
                subscribes: vec!["Tick".into()],
                responds: vec![],
            })
            .unwrap(),
            frame(&ToSwitch::Data {
                to: "b",
                epoch: 1,
                base: 0,
                first: 0,
                count: 6,
                items: &items,
            })
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
            event: "Get",
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
        let err =
            encode_item(&Item::Notify { event: "Big", payload: &big, trace: None }).unwrap_err();
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
        let all: Vec<u8> = parts.concat();
        let mut whole = vec![9];
        let data = ToSwitch::Data { to: "b", epoch: 3, base: 4, first: 5, count: 300, items: &all };
        push_frame(&mut whole, &data).unwrap();
        let mut pieces = vec![9];
        let items = parts.iter().map(Vec::as_slice);
        push_data(&mut pieces, "b", 3, 4, 5, 300, items, all.len()).unwrap();
        assert_eq!(whole, pieces);
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
        let secs: u64 =
            std::env::var("EDRI_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let mut rng = XorShift(seed);
        let samples = samples();
        let mut cases = 0u64;
        while cases < 2_000_000
            && (!cases.is_multiple_of(1024) || std::time::Instant::now() < deadline)
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
}
