//! Events from other routers into this router: each origin's stream is checked
//! ([`Inbound`]), then delivered in order by the origin's delivery task into the mailboxes of
//! their handlers, and acknowledged once handled ([`Progress`]).

use super::Connector;
use super::inbound::{Decision, Inbound, Numbers};
use super::metrics::add;
use super::peers::Events;
use super::progress::{Delivery, Progress};
use crate::envelope::Handled;
use crate::event::EventKind;
use crate::framing::decode;
use crate::registry::EventRegistration;
use crate::switch::frame::{Item, split_items};
use crate::{Ctx, Failure};
use bytes::Bytes;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// The first byte of an encoded [`Item::Request`] and [`Item::Response`] (variant indices).
const ITEM_REQUEST: u8 = 1;
const ITEM_RESPONSE: u8 = 2;

/// Every other router's stream to this router, by origin; kept across reconnections.
pub(super) type Origins = HashMap<Arc<str>, Origin>;

/// What this router knows about one other router's stream to it.
pub(super) struct Origin {
    stream: Inbound,
    queue: mpsc::UnboundedSender<Batch>,
    /// Items queued for delivery, not delivered yet.
    queued: Arc<AtomicUsize>,
    /// Which accepted events were handled: what is acknowledged.
    progress: Arc<Progress>,
    /// The origin's events by its wire ids, for its run (epoch).
    events: Option<(u64, Events)>,
}

/// Items of one frame, handed to the delivery task of their origin.
struct Batch {
    epoch: u64,
    first: u64,
    items: Bytes,
    ranges: Vec<Range<usize>>,
    events: Events,
}

/// The registration of the event that router `from` sends under wire id `id`, or why there
/// is none (a counted, logged refusal of the item).
fn event_of(events: &Events, id: u32) -> Result<&'static EventRegistration, &str> {
    match events.get(id as usize) {
        Some(Ok(r)) => Ok(r),
        Some(Err(reason)) => Err(reason),
        None => Err("an event id beyond the sender's catalog"),
    }
}

/// [`event_of`], which must be of `kind`.
fn of_kind(
    events: &Events,
    id: u32,
    kind: EventKind,
) -> Result<&'static EventRegistration, String> {
    match event_of(events, id) {
        Ok(r) if r.meta.kind == kind => Ok(r),
        Ok(r) => Err(format!("`{}` is not a {}", r.meta.name, kind.as_str())),
        Err(reason) => Err(reason.to_owned()),
    }
}

impl Connector {
    /// Accepts the items of a `Data` frame that are next in their stream, drops duplicates,
    /// asks for a resend at a gap, and hands the rest to the origin's delivery task.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive(
        self: &Arc<Self>,
        ctx: &Ctx,
        origins: &mut Origins,
        from: &str,
        epoch: u64,
        base: u64,
        first: u64,
        count: u32,
        items: Bytes,
    ) -> Result<(), String> {
        let ranges = split_items(&items, count)
            .map_err(|e| format!("malformed frame from router `{from}`: {e}"))?;
        let origin = match origins.get_mut(from) {
            Some(origin) => origin,
            None => {
                let origin = self.origin(from.into());
                origins.entry(from.into()).or_insert(origin)
            }
        };
        // The origin's catalog of this run, learned when it joined (before its first frame).
        let events = match &origin.events {
            Some((run, events)) if *run == epoch => events.clone(),
            _ => match self.peers.read().events(from, epoch) {
                Some(events) => {
                    origin.events = Some((epoch, events.clone()));
                    events
                }
                None => {
                    // Not taken: the sender sends it again, by then its catalog is known.
                    add(&self.stats.rejected, 1);
                    tracing::warn!(
                        router = from,
                        epoch,
                        "data from a run of a router whose catalog is unknown; dropped, it is sent again"
                    );
                    return Ok(());
                }
            },
        };
        // A sender beyond its window: drop, it sends again after the next acknowledgement.
        let overloaded = origin.queued.load(Ordering::Acquire) as u64 > 2 * self.window;
        let numbers = Numbers { epoch, base, first, count: ranges.len() as u64 };
        let verdict = origin.stream.receive(numbers, overloaded);
        if verdict.restarted {
            add(&self.stats.restarts, 1);
            tracing::warn!(
                router = from,
                "router restarted; events it had not sent before are lost with its previous run"
            );
        }
        if verdict.new_run {
            origin.progress.restart(epoch, base);
        }
        if verdict.given_up {
            // Given up by the sender (beyond its outage window): a tunnel cannot go on with a
            // hole in its stream.
            self.tunnels.lost(from);
        }
        add(&self.stats.duplicates, verdict.duplicates);
        let (skip, mut seq) = match verdict.decision {
            Decision::Deliver { skip, seq } => (skip, seq),
            Decision::Gap { ask: Some(seq) } => {
                self.outbox().ask_resend(from.into(), epoch, seq);
                self.wake.notify_one();
                return Ok(());
            }
            Decision::Duplicate => {
                // All seen: the acknowledgement may have been lost; say it again.
                self.ack(&from.into(), &origin.progress);
                return Ok(());
            }
            Decision::Gap { ask: None } | Decision::Stale | Decision::Overloaded => return Ok(()),
        };
        let mut rest = &ranges[usize::try_from(skip).unwrap_or(usize::MAX)..];
        let progress = origin.progress.clone();
        progress.accept(seq, rest.len() as u64);
        // With nothing of this origin waiting for delivery, leading requests and responses
        // are handled here at once: a response goes to its caller, a request into its
        // responder's mailbox (no hop through the delivery task, order kept).
        if origin.queued.load(Ordering::Acquire) == 0 {
            let from: Arc<str> = from.into();
            let handled = rest
                .iter()
                .enumerate()
                .take_while(|(i, range)| {
                    let item = &items[range.start..range.end];
                    let seq = seq + *i as u64;
                    match item.first() {
                        Some(&ITEM_REQUEST) => {
                            self.request(ctx, &from, item, &events, progress.token(epoch, seq));
                            true
                        }
                        Some(&ITEM_RESPONSE) => {
                            self.resolve_response(item);
                            drop(progress.token(epoch, seq));
                            true
                        }
                        _ => false,
                    }
                })
                .count();
            if handled > 0 {
                seq += handled as u64;
                rest = &rest[handled..];
                add(&self.stats.delivered, handled as u64);
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        for range in rest {
            self.resolve_response(&items[range.start..range.end]);
        }
        origin.queued.fetch_add(rest.len(), Ordering::AcqRel);
        let batch = Batch { epoch, first: seq, items, ranges: rest.to_vec(), events };
        if origin.queue.send(batch).is_err() {
            return Err("the delivery task ended".into());
        }
        Ok(())
    }

    /// Starts the delivery task of a new origin.
    fn origin(self: &Arc<Self>, from: Arc<str>) -> Origin {
        let (queue, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (this, origin) = (Arc::downgrade(self), from.clone());
        let progress = Progress::new(Box::new(move |progress| {
            if let Some(this) = this.upgrade() {
                this.ack(&origin, progress);
            }
        }));
        let task = tokio::spawn(self.clone().deliver(from, rx, queued.clone(), progress.clone()));
        self.tasks().push(task);
        Origin { stream: Inbound::default(), queue, queued, progress, events: None }
    }

    /// A response is handed to its caller as soon as it arrives, not behind notifications
    /// waiting for a full mailbox.
    fn resolve_response(&self, item: &[u8]) {
        if item.first() != Some(&ITEM_RESPONSE) {
            return;
        }
        if let Ok(Item::Response { call, epoch, result }) = decode::<Item<'_>>(item)
            && epoch == self.epoch
        {
            self.calls.resolve(call, result.map(<[u8]>::to_vec));
        }
    }

    /// Delivers one origin's items in order into the mailboxes of their handlers; each is
    /// acknowledged once handled ([`Progress`]).
    async fn deliver(
        self: Arc<Self>,
        from: Arc<str>,
        mut rx: mpsc::UnboundedReceiver<Batch>,
        queued: Arc<AtomicUsize>,
        progress: Arc<Progress>,
    ) {
        let Some(ctx) = self.ctx() else { return };
        while let Some(b) = rx.recv().await {
            for (i, range) in b.ranges.iter().enumerate() {
                let token = progress.token(b.epoch, b.first + i as u64);
                self.deliver_item(&ctx, &from, &b.items[range.clone()], &b.events, token).await;
            }
            let n = b.ranges.len();
            add(&self.stats.delivered, n as u64);
            queued.fetch_sub(n, Ordering::AcqRel);
        }
    }

    async fn deliver_item(
        self: &Arc<Self>,
        ctx: &Ctx,
        from: &Arc<str>,
        item: &[u8],
        events: &Events,
        token: Delivery,
    ) {
        match decode::<Item<'_>>(item) {
            Ok(Item::Notify { event, payload, trace }) => {
                let result = match of_kind(events, event, EventKind::Notification) {
                    Ok(r) => {
                        let handled = Handled::new(Arc::new(token));
                        let link = || trace.map(crate::trace::Link::remote);
                        // Usually delivered right here (room in the mailbox), under the
                        // sender's trace link.
                        let deliver = crate::trace::within(link(), || {
                            (r.notify_bytes)(ctx.clone(), payload, Some(handled))
                        });
                        crate::trace::scope(link(), deliver).await
                    }
                    Err(why) => Err(Failure::invalid(why)),
                };
                if let Err(failure) = result {
                    add(&self.stats.rejected, 1);
                    tracing::warn!(router = %from, event, %failure, "cannot deliver a notification from another router");
                }
            }
            Ok(Item::Request { .. }) => self.request(ctx, from, item, events, token),
            Ok(Item::Response { .. }) => {}
            Ok(Item::Open { tunnel, epoch, event, timeout_ms, window, payload, trace }) => {
                let _trace = crate::trace::enter(trace.map(crate::trace::Link::remote));
                let event = event_of(events, event);
                self.accept_tunnel(ctx, from, tunnel, epoch, event, timeout_ms, window, payload);
            }
            Ok(Item::Tunnel { tunnel, epoch, from_opener, message }) => {
                self.tunnel_message(from, tunnel, epoch, from_opener, message);
            }
            Err(e) => {
                add(&self.stats.rejected, 1);
                tracing::warn!(router = %from, error = %e, "malformed event from another router");
            }
        }
    }

    /// Starts answering request `item` from router `from`: the request is put into its
    /// responder's mailbox right now (one poll), and a task sends the response back.
    ///
    /// `token` is dropped once the response was queued: then the request counts as handled.
    fn request(
        self: &Arc<Self>,
        ctx: &Ctx,
        from: &Arc<str>,
        item: &[u8],
        events: &Events,
        token: Delivery,
    ) {
        let Ok(Item::Request { call, epoch, event, timeout_ms, payload, trace }) = decode(item)
        else {
            add(&self.stats.rejected, 1);
            tracing::warn!(router = %from, "malformed request from another router");
            return;
        };
        let timeout = Duration::from_millis(timeout_ms);
        let mut answer = match of_kind(events, event, EventKind::Request) {
            Ok(r) => {
                let answer = (r.request_bytes)(ctx.clone(), payload, timeout);
                match trace {
                    None => answer,
                    Some(t) => {
                        Box::pin(crate::trace::scope(Some(crate::trace::Link::remote(t)), answer))
                    }
                }
            }
            Err(why) => {
                let failure = Failure::unavailable(format!("router `{}`: {why}", self.id));
                Box::pin(std::future::ready(Err(failure)))
            }
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(result) = answer.as_mut().poll(&mut cx) {
            self.respond(from, call, epoch, result);
            return;
        }
        let (this, to) = (self.clone(), from.clone());
        tokio::spawn(async move {
            let result = answer.await;
            this.respond(&to, call, epoch, result);
            drop(token);
        });
    }

    /// Sends the response to call `call` of router `to` (never waits: responses may exceed
    /// the buffer rather than wait behind the events they answer).
    fn respond(&self, to: &Arc<str>, call: u64, epoch: u64, result: Result<Vec<u8>, Failure>) {
        let response =
            Item::Response { call, epoch, result: result.as_deref().map_err(Clone::clone) };
        if let Err(failure) = self.try_enqueue(std::slice::from_ref(to), &response, true) {
            tracing::warn!(%failure, "cannot encode a response for another router");
            let response = Item::Response { call, epoch, result: Err(failure) };
            let _ = self.try_enqueue(std::slice::from_ref(to), &response, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::frame::encode_item;

    #[test]
    fn item_tags_are_the_variant_indices() {
        let request = Item::Request {
            call: 1,
            epoch: 2,
            event: 0,
            timeout_ms: 3,
            payload: &[4],
            trace: None,
        };
        let response = Item::Response { call: 1, epoch: 2, result: Ok(&[5]) };
        let notify = Item::Notify { event: 0, payload: &[6], trace: None };
        for (item, tag) in [(request, ITEM_REQUEST), (response, ITEM_RESPONSE), (notify, 0)] {
            let bytes = encode_item(&item).unwrap();
            let range = split_items(&bytes, 1).unwrap().remove(0);
            assert_eq!(bytes[range.start], tag, "{item:?}");
        }
    }
}
