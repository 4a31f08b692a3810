//! Tunnels across routers: on each router a bridge task joins the local end's pipes to the
//! link through the switch, serializing items one way and decoding them the other, and keeps
//! the credits of the flow control.
//!
//! The link is one of the connector's numbered streams, so tunnel messages share its
//! guarantees: in order, nothing lost or repeated within the outage window.

use super::pipe::{PipeRx, PipeTx};
use super::{Tunnel, offer, pair};
use crate::event::TunnelEvent;
use crate::router::{BoxFuture, Uplink};
use crate::{Ctx, Failure};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Decodes a tunnel event opened on another router and offers it to this router's acceptor;
/// bridges the tunnel once accepted. Generated for every tunnel event.
pub(crate) type AcceptBytes = fn(Ctx, &[u8], usize, Duration, RemoteEnd) -> BoxFuture<()>;

/// What travels on a tunnel's link, either way (between a router and its process worker
/// as it is; between routers as [`crate::switch`]'s `TunnelMessage`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Message {
    /// The acceptor's answer (acceptor to opener, first).
    Verdict(Result<(), Failure>),
    /// One serialized item.
    Chunk(#[serde(serialize_with = "bytes", deserialize_with = "chunk")] Vec<u8>),
    /// The receiver took this many more items: the sender may send as many.
    Credit(u32),
    /// The sender's items are over: `None` closed, `Some` failed.
    End(Option<Failure>),
    /// The receiver stopped receiving: the sender's next send fails with this.
    Stop(Failure),
}

fn bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

fn chunk<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    <super::Chunk as serde::Deserialize>::deserialize(deserializer).map(super::Chunk::into_inner)
}

/// Sends a tunnel's messages to the router at its other end. Dropping it forgets the tunnel.
pub(crate) trait Link: Send + Sync + 'static {
    /// Sends `message`; a chunk waits while the buffer for other routers is full, the others
    /// go at once.
    fn send(&self, message: Message) -> BoxFuture<Result<(), Failure>>;
}

/// A tunnel end on another router, as the connector hands it over: what arrives from there
/// and the way back.
pub struct RemoteEnd {
    pub(crate) incoming: mpsc::UnboundedReceiver<Message>,
    pub(crate) link: Arc<dyn Link>,
}

impl std::fmt::Debug for RemoteEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEnd").finish_non_exhaustive()
    }
}

/// Opens tunnel `E` on another router through `uplink`; the local end is bridged.
pub(crate) async fn open<E: TunnelEvent>(
    ctx: &Ctx,
    uplink: Arc<dyn Uplink>,
    event: E,
    window: usize,
    timeout: Duration,
) -> Result<Tunnel<E>, Failure> {
    let payload = crate::ctx::encode(&event)?;
    let remote = uplink.open(E::META.name, payload, window, timeout).await?;
    let (mut mine, theirs) = pair::<E>(window);
    let credit = mine.bridged();
    let Tunnel { tx, rx, .. } = theirs;
    ctx.spawn(bridge(rx.pipe, tx.pipe, credit, remote, window, E::META.name));
    Ok(mine)
}

/// The acceptor's side of a tunnel opened on another router (the registration's `accept_bytes`).
pub fn accept_bytes<E: TunnelEvent>(
    ctx: Ctx,
    bytes: &[u8],
    window: usize,
    timeout: Duration,
    remote: RemoteEnd,
) -> BoxFuture<()> {
    let name = E::META.name;
    let event: Result<E, Failure> = postcard::from_bytes(bytes)
        .map_err(|e| Failure::invalid(format!("malformed tunnel event `{name}`: {e}")));
    Box::pin(async move {
        let window = window.max(1);
        let mut opened = None;
        let answer = match event {
            Err(failure) => Err(failure),
            Ok(event) => {
                let route = ctx.shared().route_of_send(std::any::TypeId::of::<E>(), ctx.origin());
                match route.and_then(|r| r.responder.as_ref()) {
                    None => Err(Failure::unavailable(format!(
                        "this router has no acceptor for tunnel `{name}`"
                    ))),
                    Some(target) => {
                        let (theirs, mut mine) = pair::<E>(window);
                        let credit = mine.bridged();
                        opened = Some((theirs, credit));
                        offer(target, event, mine, timeout).await
                    }
                }
            }
        };
        let accepted = answer.is_ok();
        if remote.link.send(Message::Verdict(answer)).await.is_err() || !accepted {
            return;
        }
        if let Some((theirs, credit)) = opened {
            let Tunnel { tx, rx, .. } = theirs;
            bridge(rx.pipe, tx.pipe, credit, remote, window, name).await;
        }
    })
}

/// Joins a local end to its link until both directions are over.
///
/// `out` holds what the local party sends (forwarded while the other router grants credit),
/// `inn` takes what arrives (the other router keeps within the credits granted here, which
/// follow what the local reader takes).
pub(crate) async fn bridge<Out, In>(
    mut out: PipeRx<Out>,
    mut inn: PipeTx<In>,
    credit: Arc<AtomicUsize>,
    remote: RemoteEnd,
    window: usize,
    name: &'static str,
) where
    Out: Serialize + Send + 'static,
    In: DeserializeOwned + Send + 'static,
{
    let RemoteEnd { mut incoming, link } = remote;
    let grant_at = (window / 4).max(1);
    // Chunks the other router may still send before more credit.
    let mut allowed = window;
    // Items the local reader took, not granted back yet.
    let mut taken = 0usize;
    let (mut out_done, mut in_done) = (false, false);
    while !(out_done && in_done) {
        tokio::select! {
            item = out.recv(), if !out_done && credit.load(Ordering::Acquire) > 0 => {
                let message = match item {
                    Ok(Some(item)) => match crate::ctx::encode(&item) {
                        Ok(bytes) => {
                            credit.fetch_sub(1, Ordering::AcqRel);
                            Message::Chunk(bytes)
                        }
                        Err(failure) => {
                            out.stop(failure.clone());
                            out_done = true;
                            Message::End(Some(failure))
                        }
                    },
                    Ok(None) => {
                        out_done = true;
                        Message::End(None)
                    }
                    Err(failure) => {
                        out_done = true;
                        Message::End(Some(failure))
                    }
                };
                if let Err(failure) = link.send(message).await {
                    // Refused (too large) or the router stops: the tunnel ends on both sides.
                    let _ = link.send(Message::Stop(failure.clone())).await;
                    let _ = link.send(Message::End(Some(failure.clone()))).await;
                    out.stop(failure.clone());
                    inn.finish(Err(failure));
                    return;
                }
            }
            message = incoming.recv() => match message {
                Some(Message::Chunk(bytes)) => {
                    if in_done {
                        continue;
                    }
                    if allowed == 0 {
                        let failure = Failure::invalid(format!(
                            "the other side of tunnel `{name}` sent items beyond its credit"
                        ));
                        out.stop(failure.clone());
                        inn.finish(Err(failure.clone()));
                        let _ = link.send(Message::Stop(failure.clone())).await;
                        let _ = link.send(Message::End(Some(failure))).await;
                        return;
                    }
                    allowed -= 1;
                    match postcard::from_bytes::<In>(&bytes) {
                        // A reader that is gone is seen below.
                        Ok(item) => {
                            let _ = inn.push(item);
                        }
                        Err(e) => {
                            let failure = Failure::invalid(format!(
                                "malformed item of tunnel `{name}` from the other side: {e}"
                            ));
                            inn.finish(Err(failure.clone()));
                            in_done = true;
                            let _ = link.send(Message::Stop(failure)).await;
                        }
                    }
                }
                Some(Message::Credit(n)) => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    credit.fetch_add(n, Ordering::AcqRel);
                }
                Some(Message::End(end)) => {
                    inn.finish(end.map_or(Ok(()), Err));
                    in_done = true;
                }
                Some(Message::Stop(failure)) => {
                    out.stop(failure);
                    out_done = true;
                }
                Some(Message::Verdict(_)) => {}
                None => {
                    let failure = Failure::unavailable(format!(
                        "the other side of tunnel `{name}` is gone (its router or worker process)"
                    ));
                    // The sending side first: whoever sees the end of the stream finds sending
                    // over too.
                    out.stop(failure.clone());
                    inn.finish(Err(failure));
                    return;
                }
            },
            took = inn.consumed(), if !in_done => match took {
                Some(n) => {
                    taken += n;
                    if taken >= grant_at || inn.queued() == 0 {
                        let n = u32::try_from(taken).unwrap_or(u32::MAX);
                        allowed += n as usize;
                        taken -= n as usize;
                        let _ = link.send(Message::Credit(n)).await;
                    }
                }
                None => {
                    in_done = true;
                    let failure = Failure::unavailable(format!(
                        "the other side of tunnel `{name}` stopped receiving"
                    ));
                    let _ = link.send(Message::Stop(failure)).await;
                }
            },
        }
    }
}
