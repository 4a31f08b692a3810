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
///
/// 4: events travel under numeric ids (each router's wire ids, its catalog sorted by name); a router's
/// catalog reaches the others through the switch.
pub const PROTOCOL: u32 = 4;

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
    /// Its events in the order of its wire ids: an item from it names event `i` of this list.
    pub(crate) catalog: Vec<CatalogEntry>,
    /// Notifications it has subscribers for.
    pub(crate) subscribes: Vec<String>,
    /// Requests it answers.
    pub(crate) responds: Vec<String>,
}

/// Router → switch, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToSwitch<'a> {
    /// The first frame after authentication; `catalog` in the order of the router's wire ids.
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
/// (a postcard varint), so that a bad item can be refused on its own. An `event` is the
/// sender's wire id of the event (its index in the sender's catalog, [`PeerInfo::catalog`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Item<'a> {
    /// `trace`, here and in `Request` and `Open`: the sending handler's trace link
    /// ([`crate::trace`]).
    Notify {
        event: u32,
        #[serde(borrow, serialize_with = "raw")]
        payload: &'a [u8],
        trace: Option<TraceContext>,
    },
    Request {
        call: u64,
        /// The requester's epoch: a response for another incarnation is dropped.
        epoch: u64,
        event: u32,
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
        event: u32,
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

/// Appends an item's bytes (without its length prefix) to `out`.
///
/// # Errors
/// `Invalid` when the item cannot be serialized or is larger than [`MAX_ITEM`]: refused here,
/// it never reaches the stream (where it could only be refused again and again); `out` is
/// then as it was.
pub(crate) fn write_item(out: &mut Vec<u8>, item: &Item<'_>) -> Result<(), Failure> {
    let at = out.len();
    if let Err(e) = postcard::to_io(item, &mut *out) {
        out.truncate(at);
        return Err(Failure::invalid(format!("cannot serialize: {e}")));
    }
    let size = out.len() - at;
    if size > MAX_ITEM {
        out.truncate(at);
        return Err(Failure::invalid(format!(
            "an event of {size} bytes is above the limit of {MAX_ITEM} bytes between routers \
             (split it, e.g. into the items of a tunnel)"
        )));
    }
    Ok(())
}

/// An item's bytes, length-prefixed, as they go into `items` (tests).
#[cfg(test)]
pub(crate) fn encode_item(item: &Item<'_>) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    write_item(&mut body, item)?;
    let mut out = Vec::with_capacity(body.len() + 5);
    push_varint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Bytes of `n` as a postcard varint.
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
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

/// Pushes a `Data` frame whose items are the bodies `items` (each gets its length prefix
/// here), without gathering them into one buffer first: the same bytes as [`push_frame`] of
/// `ToSwitch::Data { .., items: &all }` where `all` holds each body after its length.
pub(crate) fn push_data<'a>(
    out: &mut Vec<u8>,
    to: &str,
    numbers: (u64, u64, u64),
    count: u32,
    items: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<(), FrameError> {
    let (epoch, base, first) = numbers;
    let total: usize = items.clone().map(|i| varint_len(i.len() as u64) + i.len()).sum();
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
        push_varint(out, item.len() as u64);
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
mod tests;
