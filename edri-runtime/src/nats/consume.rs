//! Notifications from the stream into this router: read through the router's durable
//! consumer, deduplicated by `(origin, epoch, event, seq)`, delivered to the local handlers,
//! acknowledged once every one of them returned. A batched message (`Edri-Count: n`, see
//! `publish.rs`) is handled as one: its notifications are delivered in their order and it is
//! acknowledged once the handlers of all of them returned.

use super::Link;
use super::metrics::{add, sub};
use super::publish::{COUNT_HEADER, FLOOR_HEADER};
use crate::envelope::{Completion, Handled};
use crate::event::EventKind;
use crate::registry::EventRegistration;
use crate::{Ctx, Failure};
use async_nats::Subject;
use async_nats::jetstream::consumer::PullConsumer;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::mpsc;

/// How long a message waits for a hole before it to fill, beyond `ack_wait` (a message lost
/// on its way here is delivered again after `ack_wait`; a publish sent again comes sooner).
const HOLD: Duration = Duration::from_secs(5);
/// Sequences remembered above the contiguous prefix of one stream, at most.
const SEEN_LIMIT: usize = 64 * 1024;

/// The events of one `(origin, epoch, event)` stream delivered in this run, as messages:
/// a sender publishes each sequence in one message, always with the same first sequence and
/// count, so a message is known by its first sequence.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Every sequence below was delivered.
    floor: u64,
    /// The messages above, first sequence → the sequence after its last.
    above: BTreeMap<u64, u64>,
}

impl Seen {
    /// Records the message of sequences `seq..seq + count`; whether it is new.
    pub(super) fn insert(&mut self, seq: u64, count: u64) -> bool {
        if seq < self.floor || self.above.contains_key(&seq) {
            return false;
        }
        self.above.insert(seq, seq + count.max(1));
        self.advance();
        if self.above.len() > SEEN_LIMIT
            && let Some((_, end)) = self.above.pop_first()
        {
            // A hole that never fills (the sender gave it up): move on.
            self.floor = end;
            self.advance();
        }
        true
    }

    fn advance(&mut self) {
        while let Some(end) = self.above.remove(&self.floor) {
            self.floor = end;
        }
    }
}

/// Who sent a message: `Nats-Msg-Id` is `<origin>/<epoch>/<event>/<seq>`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MsgId<'a> {
    pub(super) origin: &'a str,
    pub(super) epoch: u64,
    pub(super) event: &'a str,
    pub(super) seq: u64,
}

impl<'a> MsgId<'a> {
    pub(super) fn parse(id: &'a str) -> Option<Self> {
        let (origin, rest) = id.split_once('/')?;
        let (epoch, rest) = rest.split_once('/')?;
        let (event, seq) = rest.rsplit_once('/')?;
        Some(Self { origin, epoch: epoch.parse().ok()?, event, seq: seq.parse().ok()? })
    }
}

/// The messages handed to handlers and not acknowledged yet: told to JetStream as in
/// progress (`+WPI`) so that a slow handler (or a full mailbox) does not get its message
/// acknowledged by a redelivery, nor delivered again after `ack_wait`.
#[derive(Default)]
pub(super) struct Working {
    replies: Mutex<HashMap<(Key, u64), Subject>>,
}

impl Working {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Key, u64), Subject>> {
        self.replies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(&self, work: &(Key, u64)) -> bool {
        self.lock().contains_key(work)
    }

    fn all(&self) -> Vec<Subject> {
        self.lock().values().cloned().collect()
    }
}

/// One message handed to the handlers: acknowledged once they all returned.
struct Ack {
    work: (Key, u64),
    reply: Subject,
    acks: mpsc::UnboundedSender<Subject>,
    link: Weak<Link>,
    abandoned: AtomicBool,
}

impl Completion for Ack {
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(link) = self.link.upgrade() {
            sub(&link.stats.pending_acks, 1);
            link.working.lock().remove(&self.work);
        }
        // Abandoned (the router stopped before handling it): JetStream delivers it again
        // after `ack_wait`, to this router's next run.
        if !self.abandoned.load(Ordering::Acquire) {
            let _ = self.acks.send(self.reply.clone());
        }
    }
}

/// A message that passed the checks, ready for the handlers of its event.
struct Ready {
    key: Key,
    /// The sequence of its first notification.
    seq: u64,
    reply: Subject,
    registration: &'static EventRegistration,
    /// Its notifications, in order (`seq..seq + len`).
    payloads: Vec<Bytes>,
    /// The senders' trace link, from the `traceparent` header.
    trace: Option<crate::trace::TraceContext>,
}

impl Ready {
    /// The sequence after its last notification.
    fn end(&self) -> u64 {
        self.seq + self.payloads.len() as u64
    }
}

/// One `(origin, epoch, event)` stream as this router reads it: what was delivered, and what
/// waits for a hole before it to fill (a publish the sender had to send again).
#[derive(Default)]
struct Incoming {
    seen: Seen,
    /// The next sequence to deliver in order.
    next: Option<u64>,
    held: BTreeMap<u64, Ready>,
    /// When the first held message came.
    since: Option<Instant>,
}

/// `(origin, epoch, event)`.
type Key = (String, u64, String);
type Streams = HashMap<Key, Incoming>;

/// What this router's consumer delivered: a gap in its delivery sequence means deliveries were
/// lost on a link (NATS sends them again after `ack_wait`), so until then the senders' floors
/// must not skip the holes they left.
#[derive(Default)]
struct Deliveries {
    last: Option<u64>,
    lost_until: Option<Instant>,
}

impl Deliveries {
    /// Notes delivery `sequence`; `wait` is how long lost deliveries take to come again.
    fn note(&mut self, sequence: u64, wait: Duration) {
        if self.last.is_some_and(|last| sequence > last + 1) {
            self.lost_until = Some(Instant::now() + wait);
        }
        self.last = Some(self.last.map_or(sequence, |last| last.max(sequence)));
    }

    /// Whether a floor may skip a hole: no delivery may still come again.
    fn floor_holds(&self) -> bool {
        self.lost_until.is_none_or(|until| Instant::now() > until)
    }
}

impl Link {
    /// Reads the consumer until the router stops; acknowledges through `acks`.
    pub(super) async fn consume(
        self: Arc<Self>,
        consumer: PullConsumer,
        ctx: Ctx,
        acks: mpsc::UnboundedSender<Subject>,
    ) {
        let mut streams = Streams::new();
        let mut deliveries = Deliveries::default();
        let mut progress = Instant::now();
        loop {
            let stream = consumer
                .stream()
                .max_messages_per_batch(self.in_flight.min(1_000))
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await;
            let mut messages = match stream {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "cannot read this router's NATS consumer; again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                let next = tokio::time::timeout(Duration::from_millis(200), messages.next()).await;
                match next {
                    Ok(Some(Ok(message))) => {
                        if let Ok(info) = message.info() {
                            let wait = self.config.ack_wait + HOLD;
                            deliveries.note(info.consumer_sequence, wait);
                        }
                        let floor_holds = deliveries.floor_holds();
                        self.receive(&ctx, &mut streams, message, floor_holds, &acks).await;
                    }
                    Ok(Some(Err(error))) => tracing::debug!(%error, "NATS consumer"),
                    Ok(None) => break,
                    Err(_) => {}
                }
                self.release(&ctx, &mut streams, &acks).await;
                if progress.elapsed() > self.config.ack_wait / 3 {
                    progress = Instant::now();
                    self.in_progress(&streams).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One message of the stream: checked, deduplicated, delivered in each sender's order.
    async fn receive(
        self: &Arc<Self>,
        ctx: &Ctx,
        streams: &mut Streams,
        message: async_nats::jetstream::Message,
        floor_holds: bool,
        acks: &mpsc::UnboundedSender<Subject>,
    ) {
        let Some((ready, floor)) = self.check(message, acks) else { return };
        let seq = ready.seq;
        let incoming = streams.entry(ready.key.clone()).or_default();
        if !incoming.seen.insert(seq, ready.payloads.len() as u64) {
            add(&self.stats.duplicates, 1);
            // A held message, or one its handlers have not finished, is acknowledged once
            // handled; the others were (that acknowledgement was lost).
            let pending = incoming.held.contains_key(&seq)
                || self.working.contains(&(ready.key.clone(), seq));
            if !pending {
                let _ = acks.send(ready.reply);
            }
            return;
        }
        // What is below the sender's floor is in the stream before this message: if it has
        // not come, it will not come in order (a previous run of this router took it) —
        // unless deliveries to this router were lost lately: then it comes again.
        let next = incoming.next.get_or_insert(floor);
        if floor_holds {
            *next = (*next).max(floor);
        }
        if seq > *next {
            incoming.held.insert(seq, ready);
            incoming.since.get_or_insert_with(Instant::now);
            // Held messages are unacknowledged: at `in_flight` of them NATS sends this router
            // nothing new but still sends a lost delivery again (the usual hole), so the wait
            // is bounded by time only ([`Self::release`]).
            return;
        }
        if seq == *next {
            *next = ready.end();
        } else {
            add(&self.stats.out_of_order, ready.payloads.len() as u64);
            tracing::warn!(
                router = %ready.key.0,
                event = %ready.key.2,
                seq,
                next = *next,
                "a notification came after later ones of its sender: delivered out of order"
            );
        }
        self.deliver(ctx, ready, acks).await;
        while let Some(entry) = incoming.held.first_entry() {
            if Some(*entry.key()) != incoming.next {
                break;
            }
            let ready = entry.remove();
            incoming.next = Some(ready.end());
            self.deliver(ctx, ready, acks).await;
        }
        if incoming.held.is_empty() {
            incoming.since = None;
        }
    }

    /// Tells JetStream that what is held for a hole is in progress.
    async fn in_progress(&self, streams: &Streams) {
        let Ok(client) = self.client() else { return };
        let held: Vec<Subject> =
            streams.values().flat_map(|s| s.held.values().map(|r| r.reply.clone())).collect();
        for reply in held {
            let _ = client.publish(reply, "+WPI".into()).await;
        }
    }

    /// Every third of `ack_wait`, tells JetStream that what is being handled is in progress
    /// (apart from the consumer's loop, which may wait for a full mailbox).
    pub(super) async fn keep_working(self: Arc<Self>) {
        let mut interval = tokio::time::interval(self.config.ack_wait / 3);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Ok(client) = self.client() else { continue };
            for reply in self.working.all() {
                let _ = client.publish(reply, "+WPI".into()).await;
            }
        }
    }

    /// Delivers what waited too long for a hole to fill: the hole's events come later, out
    /// of order, if at all.
    async fn release(
        self: &Arc<Self>,
        ctx: &Ctx,
        streams: &mut Streams,
        acks: &mpsc::UnboundedSender<Subject>,
    ) {
        for ((origin, _, event), incoming) in streams.iter_mut() {
            let hold = self.config.ack_wait + HOLD;
            if incoming.since.is_some_and(|since| since.elapsed() > hold) {
                tracing::warn!(
                    router = %origin,
                    event = %event,
                    next = ?incoming.next,
                    held = incoming.held.len(),
                    "a notification did not come in order within {hold:?}: delivering the \
                     ones after it"
                );
                self.deliver_held(ctx, incoming, acks).await;
            }
        }
    }

    async fn deliver_held(
        self: &Arc<Self>,
        ctx: &Ctx,
        incoming: &mut Incoming,
        acks: &mpsc::UnboundedSender<Subject>,
    ) {
        let held = std::mem::take(&mut incoming.held);
        if let Some(last) = held.values().next_back() {
            incoming.next = Some(last.end());
        }
        incoming.since = None;
        for ready in held.into_values() {
            self.deliver(ctx, ready, acks).await;
        }
    }

    /// Checks a message: its id, its event, its size. Rejected, own and unsubscribed
    /// messages are acknowledged here.
    fn check(
        &self,
        message: async_nats::jetstream::Message,
        acks: &mpsc::UnboundedSender<Subject>,
    ) -> Option<(Ready, u64)> {
        let reply = message.message.reply.clone()?;
        if message.info().is_ok_and(|info| info.delivered > 1) {
            add(&self.stats.redelivered, 1);
        }
        let header = |name| {
            let headers = message.message.headers.as_ref()?;
            headers.get(name).map(|v| v.as_str().to_owned())
        };
        let msg_id = header(async_nats::header::NATS_MESSAGE_ID);
        let floor = header(async_nats::header::IntoHeaderName::into_header_name(FLOOR_HEADER));
        let count = header(async_nats::header::IntoHeaderName::into_header_name(COUNT_HEADER));
        let trace = header(async_nats::header::IntoHeaderName::into_header_name(
            super::publish::TRACEPARENT,
        ))
        .and_then(|t| crate::trace::TraceContext::from_traceparent(&t));
        let subject = message.message.subject.as_str();
        let subject_event = subject.strip_prefix(self.subjects.notify.as_str());
        let Some(id) = msg_id.as_deref().and_then(MsgId::parse) else {
            self.reject(acks, reply, subject_event, "no valid Nats-Msg-Id header");
            return None;
        };
        if subject_event != Some(id.event) {
            self.reject(acks, reply, subject_event, "its subject and its id disagree");
            return None;
        }
        if id.origin == self.id || !self.subscribes.iter().any(|s| s == id.event) {
            // Its own notification (delivered locally already), or one without subscribers
            // here (read through the `ns.n.>` filter).
            let _ = acks.send(reply);
            return None;
        }
        let registration = crate::registry::event(id.event)
            .filter(|r| r.meta.kind == EventKind::Notification && !r.meta.local);
        let Some(registration) = registration else {
            self.reject(acks, reply, subject_event, "not a notification of this binary");
            return None;
        };
        if message.message.payload.len() > self.config.max_event {
            self.reject(acks, reply, subject_event, "larger than the largest event");
            return None;
        }
        let payload = &message.message.payload;
        let payloads = match count.map(|n| n.parse::<usize>()) {
            None => vec![payload.clone()],
            Some(Ok(n)) if n > 1 => match unframe(payload, n) {
                Some(payloads) => payloads,
                None => {
                    self.reject(acks, reply, subject_event, "a batch that does not hold its count");
                    return None;
                }
            },
            Some(_) => {
                self.reject(acks, reply, subject_event, "an invalid Edri-Count header");
                return None;
            }
        };
        let floor = floor.and_then(|f| f.parse().ok()).unwrap_or(id.seq);
        let key = (id.origin.to_owned(), id.epoch, id.event.to_owned());
        let seq = id.seq;
        Some((Ready { key, seq, reply, registration, payloads, trace }, floor))
    }

    /// Hands the notifications of `ready` to their handlers; acknowledged once they all
    /// returned.
    async fn deliver(
        self: &Arc<Self>,
        ctx: &Ctx,
        ready: Ready,
        acks: &mpsc::UnboundedSender<Subject>,
    ) {
        add(&self.stats.pending_acks, 1);
        let work = (ready.key, ready.seq);
        self.working.lock().insert(work.clone(), ready.reply.clone());
        let ack = Ack {
            work,
            reply: ready.reply,
            acks: acks.clone(),
            link: Arc::downgrade(self),
            abandoned: AtomicBool::new(false),
        };
        let handled = Handled::new(Arc::new(ack));
        let event = ready.registration.meta.name;
        let from = ready.trace.map(crate::trace::Link::remote);
        for payload in &ready.payloads {
            let notify = crate::trace::within(from.clone(), || {
                (ready.registration.notify_bytes)(ctx.clone(), payload, Some(handled.clone()))
            });
            match crate::trace::scope(from.clone(), notify).await {
                Ok(()) => add(&self.stats.delivered, 1),
                Err(failure) => self.decode_error(event, &failure),
            }
        }
    }

    /// A message that is not an event of this application: counted, logged, and
    /// acknowledged, so that it is not delivered again.
    fn reject(
        &self,
        acks: &mpsc::UnboundedSender<Subject>,
        reply: Subject,
        event: Option<&str>,
        why: &str,
    ) {
        self.decode_error(event.unwrap_or("?"), &Failure::invalid(why.to_owned()));
        let _ = acks.send(reply);
    }

    pub(super) fn decode_error(&self, event: &str, failure: &Failure) {
        add(&self.stats.decode_errors, 1);
        tracing::warn!(event, %failure, "dropped a message from NATS that is not a valid event");
    }

    /// Sends the acknowledgements of handled messages.
    pub(super) async fn acknowledge(
        client: async_nats::Client,
        mut acks: mpsc::UnboundedReceiver<Subject>,
    ) {
        while let Some(reply) = acks.recv().await {
            if let Err(error) = client.publish(reply, "+ACK".into()).await {
                tracing::debug!(%error, "cannot acknowledge a NATS message");
            }
        }
    }
}

/// The `count` notifications of a batched payload: each a little-endian `u32` length and
/// that many bytes, nothing after the last.
fn unframe(payload: &Bytes, count: usize) -> Option<Vec<Bytes>> {
    let mut parts = Vec::with_capacity(count.min(payload.len() / 4));
    let mut at = 0;
    while at < payload.len() {
        let len = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
        let start = at + 4;
        let end = start.checked_add(len).filter(|&end| end <= payload.len())?;
        parts.push(payload.slice(start..end));
        at = end;
    }
    (parts.len() == count).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_deliveries_suspends_the_floors() {
        let mut d = Deliveries::default();
        d.note(1, Duration::from_secs(60));
        d.note(2, Duration::from_secs(60));
        assert!(d.floor_holds());
        // 3..=5 were lost with a link: they come again, the floors wait for them.
        d.note(6, Duration::from_secs(60));
        assert!(!d.floor_holds());
        // A redelivery has a later delivery sequence; an old one changes nothing.
        d.note(4, Duration::from_secs(60));
        assert_eq!(d.last, Some(6));
        let mut d = Deliveries::default();
        d.note(1, Duration::ZERO);
        d.note(9, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(d.floor_holds(), "the wait is over");
    }

    #[test]
    fn seen_drops_what_was_delivered_and_stays_bounded() {
        let mut seen = Seen::default();
        assert!(seen.insert(0, 1) && seen.insert(2, 1) && seen.insert(1, 1));
        assert!(!seen.insert(1, 1) && !seen.insert(2, 1) && !seen.insert(0, 1));
        assert_eq!((seen.floor, seen.above.len()), (3, 0));
        // Batches: known by their first sequence, the floor passes their last.
        assert!(seen.insert(7, 4) && seen.insert(3, 4));
        assert!(!seen.insert(7, 4) && !seen.insert(3, 4) && !seen.insert(10, 1));
        assert_eq!((seen.floor, seen.above.len()), (11, 0));
        // Joined late: a hole at the start stays until the limit, then is passed.
        let mut late = Seen::default();
        for seq in 1_000..1_000 + SEEN_LIMIT as u64 + 1 {
            assert!(late.insert(seq, 1));
        }
        assert!(late.above.len() <= SEEN_LIMIT);
        assert!(!late.insert(1_000, 1));
    }

    #[test]
    fn batches_unframe_exactly() {
        let mut framed = Vec::new();
        for part in [&b"ab"[..], b"", b"cde"] {
            framed.extend_from_slice(&u32::try_from(part.len()).unwrap().to_le_bytes());
            framed.extend_from_slice(part);
        }
        let framed = Bytes::from(framed);
        let parts = unframe(&framed, 3).unwrap();
        assert_eq!(parts, [&b"ab"[..], b"", b"cde"]);
        assert_eq!(unframe(&framed, 2), None);
        assert_eq!(unframe(&framed.slice(..framed.len() - 1), 3), None);
    }

    #[test]
    fn message_ids_parse() {
        let id = MsgId::parse("a-1/17/files.list/42").unwrap();
        assert_eq!(id, MsgId { origin: "a-1", epoch: 17, event: "files.list", seq: 42 });
        assert_eq!(MsgId::parse("garbage"), None);
        assert_eq!(MsgId::parse("a/x/E/1"), None);
    }
}
