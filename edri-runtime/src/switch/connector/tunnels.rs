//! Tunnels with other routers: each one's way in (its bridge's channel) and way out (items of
//! the stream to the other router).

use super::Connector;
use crate::registry::EventRegistration;
use crate::router::{BoxFuture, Outbound};
use crate::switch::frame::{Item, TunnelMessage};
use crate::tunnel::remote::{Link, Message, RemoteEnd};
use crate::{Ctx, Failure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// A tunnel with another router: the router, the opener's epoch, the tunnel's number (the
/// opener's), and whether this router opened it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TunnelKey {
    peer: Arc<str>,
    epoch: u64,
    id: u64,
    opened_here: bool,
}

/// Where the messages of one tunnel go: its bridge.
struct Slot {
    tx: mpsc::UnboundedSender<Message>,
    /// The other router's epoch: the tunnel ends when that router restarts.
    peer_epoch: u64,
}

/// The tunnels open with other routers.
#[derive(Default)]
pub(super) struct Tunnels {
    slots: Mutex<HashMap<TunnelKey, Slot>>,
    next: AtomicU64,
}

impl Tunnels {
    fn slots(&self) -> MutexGuard<'_, HashMap<TunnelKey, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn len(&self) -> usize {
        self.slots().len()
    }

    /// Ends every tunnel (the router is stopping).
    pub(super) fn clear(&self) {
        self.slots().clear();
    }

    /// Ends the tunnels with router `id` (all of them, or those of another epoch than
    /// `epoch`): their bridges see the link gone and fail both directions.
    pub(super) fn end(&self, id: &str, epoch: Option<u64>) {
        self.slots()
            .retain(|key, slot| &*key.peer != id || epoch.is_some_and(|e| e == slot.peer_epoch));
    }

    /// Events with router `id` were given up (beyond the outage window): its tunnels may have
    /// lost items, so they end, with an error on both directions.
    pub(super) fn lost(&self, id: &str) {
        let failure = Failure::unavailable(format!(
            "items of this tunnel with router `{id}` were given up beyond the outage window"
        ));
        self.slots().retain(|key, slot| {
            if &*key.peer != id {
                return true;
            }
            let _ = slot.tx.send(Message::Stop(failure.clone()));
            let _ = slot.tx.send(Message::End(Some(failure.clone())));
            false
        });
    }
}

impl Connector {
    /// Registers tunnel `key` with a router of epoch `peer_epoch`: its messages from there
    /// arrive in the end's `incoming`; dropping the end's link forgets it.
    fn tunnel(self: &Arc<Self>, key: TunnelKey, peer_epoch: u64) -> RemoteEnd {
        let (tx, incoming) = mpsc::unbounded_channel();
        self.tunnels.slots().insert(key.clone(), Slot { tx, peer_epoch });
        RemoteEnd { incoming, link: Arc::new(TunnelLink { connector: self.clone(), key }) }
    }

    /// Opens tunnel `event` with a router that accepts it; the end once the acceptor agreed.
    pub(super) async fn open_tunnel(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        window: usize,
        timeout: Duration,
    ) -> Result<RemoteEnd, Failure> {
        let out = Outbound::named(event);
        let Some(to) = self.peers.responder(out) else {
            return Err(Failure::unavailable(format!(
                "no acceptor for tunnel `{event}` on this router or any router of the switch"
            )));
        };
        let peer_epoch = self.peers.read().epoch(&to);
        let id = self.tunnels.next.fetch_add(1, Ordering::Relaxed);
        let key = TunnelKey { peer: to.clone(), epoch: self.epoch, id, opened_here: true };
        let RemoteEnd { mut incoming, link } = self.tunnel(key, peer_epoch);
        let item = Item::Open {
            tunnel: id,
            epoch: self.epoch,
            event: Self::wire(out)?,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            window: u32::try_from(window).unwrap_or(u32::MAX),
            payload: &payload,
            trace: crate::trace::context(),
        };
        let answer = async {
            self.enqueue(std::slice::from_ref(&to), &item, false).await?;
            loop {
                match incoming.recv().await {
                    Some(Message::Verdict(result)) => return result,
                    Some(_) => {}
                    None => {
                        return Err(Failure::unavailable(format!(
                            "router `{to}` went away before answering tunnel `{event}`"
                        )));
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(())) => Ok(RemoteEnd { incoming, link }),
            Ok(Err(failure)) => Err(failure),
            Err(_) => {
                let failure = Failure::timeout(format!(
                    "the acceptor of tunnel `{event}` on router `{to}` did not answer within \
                     {timeout:?}"
                ));
                // An acceptor that answers later finds both directions over.
                let _ = link.send(Message::Stop(failure.clone())).await;
                let _ = link.send(Message::End(Some(failure.clone()))).await;
                Err(failure)
            }
        }
    }

    /// Router `from` (of epoch `epoch`) opens tunnel `tunnel` here: hands it to the acceptor
    /// of `event`, or refuses it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_tunnel(
        self: &Arc<Self>,
        ctx: &Ctx,
        from: &Arc<str>,
        tunnel: u64,
        epoch: u64,
        event: Result<&'static EventRegistration, &str>,
        timeout_ms: u64,
        window: u32,
        payload: &[u8],
    ) {
        let key = TunnelKey { peer: from.clone(), epoch, id: tunnel, opened_here: false };
        let remote = self.tunnel(key, epoch);
        let window = usize::try_from(window).unwrap_or(usize::MAX);
        let timeout = Duration::from_millis(timeout_ms);
        let accept = match event.map(|r| (r, r.accept_bytes)) {
            Ok((_, Some(accept))) => accept(ctx.clone(), payload, window, timeout, remote),
            refused => {
                let failure = Failure::unavailable(match refused {
                    Ok((r, _)) => {
                        format!("router `{}` has no acceptor for tunnel `{}`", self.id, r.meta.name)
                    }
                    Err(reason) => format!("router `{}` refused a tunnel: {reason}", self.id),
                });
                Box::pin(async move {
                    let _ = remote.link.send(Message::Verdict(Err(failure))).await;
                })
            }
        };
        tokio::spawn(accept);
    }

    /// A message of tunnel `tunnel` (opened by a router of epoch `epoch`) from router `from`:
    /// to the tunnel's bridge, if the tunnel is still open.
    pub(super) fn tunnel_message(
        &self,
        from: &Arc<str>,
        tunnel: u64,
        epoch: u64,
        from_opener: bool,
        message: TunnelMessage<'_>,
    ) {
        let opened_here = !from_opener;
        if opened_here && epoch != self.epoch {
            return;
        }
        let key = TunnelKey { peer: from.clone(), epoch, id: tunnel, opened_here };
        let message = match message {
            TunnelMessage::Verdict(result) => Message::Verdict(result),
            TunnelMessage::Chunk(bytes) => Message::Chunk(bytes.to_vec()),
            TunnelMessage::Credit(n) => Message::Credit(n),
            TunnelMessage::End(end) => Message::End(end),
            TunnelMessage::Stop(why) => Message::Stop(why),
        };
        if let Some(slot) = self.tunnels.slots().get(&key) {
            let _ = slot.tx.send(message);
        }
    }
}

/// A tunnel's way to the router at its other end (see [`Link`]).
struct TunnelLink {
    connector: Arc<Connector>,
    key: TunnelKey,
}

impl Link for TunnelLink {
    fn send(&self, message: Message) -> BoxFuture<Result<(), Failure>> {
        let connector = self.connector.clone();
        let key = (self.key.id, self.key.epoch, self.key.opened_here);
        let to = std::slice::from_ref(&self.key.peer);
        if !matches!(message, Message::Chunk(_)) {
            // Credits and ends never wait behind the data they let through.
            let sent = connector.try_enqueue(to, &tunnel_item(key, &message), true).map(drop);
            return Box::pin(std::future::ready(sent));
        }
        let to = self.key.peer.clone();
        Box::pin(async move {
            let item = tunnel_item(key, &message);
            connector.enqueue(std::slice::from_ref(&to), &item, false).await
        })
    }
}

/// The item of `message` on tunnel `(id, epoch, opened here)`.
fn tunnel_item((tunnel, epoch, from_opener): (u64, u64, bool), message: &Message) -> Item<'_> {
    Item::Tunnel {
        tunnel,
        epoch,
        from_opener,
        message: match message {
            Message::Verdict(result) => TunnelMessage::Verdict(result.clone()),
            Message::Chunk(bytes) => TunnelMessage::Chunk(bytes),
            Message::Credit(n) => TunnelMessage::Credit(*n),
            Message::End(end) => TunnelMessage::End(end.clone()),
            Message::Stop(why) => TunnelMessage::Stop(why.clone()),
        },
    }
}

impl Drop for TunnelLink {
    fn drop(&mut self) {
        self.connector.tunnels.slots().remove(&self.key);
    }
}
