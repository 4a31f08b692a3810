//! Notifications from the stream into this router: read through the router's durable
//! consumer, deduplicated by `(origin, epoch, event, seq)`, delivered to the local handlers,
//! acknowledged once every one of them returned.

use super::Link;
use super::metrics::{add, sub};
use crate::envelope::{Completion, Handled};
use crate::event::EventKind;
use crate::{Ctx, Failure};
use async_nats::Subject;
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Sequences remembered above the contiguous prefix of one stream, at most.
const SEEN_LIMIT: usize = 64 * 1024;

/// The events of one `(origin, epoch, event)` stream delivered in this run.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Every sequence below was delivered.
    floor: u64,
    above: BTreeSet<u64>,
}

impl Seen {
    /// Records `seq`; whether it is new.
    pub(super) fn insert(&mut self, seq: u64) -> bool {
        if seq < self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&self.floor) {
            self.floor += 1;
        }
        if self.above.len() > SEEN_LIMIT
            && let Some(first) = self.above.pop_first()
        {
            // A hole that never fills (the sender gave it up): move on.
            self.floor = first + 1;
            while self.above.remove(&self.floor) {
                self.floor += 1;
            }
        }
        true
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

/// One message handed to the handlers: acknowledged once they all returned.
struct Ack {
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
        }
        // Abandoned (the router stopped before handling it): JetStream delivers it again
        // after `ack_wait`, to this router's next run.
        if !self.abandoned.load(Ordering::Acquire) {
            let _ = self.acks.send(self.reply.clone());
        }
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
        let mut seen: HashMap<(String, u64, String), Seen> = HashMap::new();
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
            while let Some(message) = messages.next().await {
                match message {
                    Ok(message) => self.receive(&ctx, &mut seen, message, &acks).await,
                    Err(error) => tracing::debug!(%error, "NATS consumer"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One message of the stream.
    async fn receive(
        self: &Arc<Self>,
        ctx: &Ctx,
        seen: &mut HashMap<(String, u64, String), Seen>,
        message: async_nats::jetstream::Message,
        acks: &mpsc::UnboundedSender<Subject>,
    ) {
        let Some(reply) = message.message.reply.clone() else { return };
        if message.info().is_ok_and(|info| info.delivered > 1) {
            add(&self.stats.redelivered, 1);
        }
        let msg_id = message
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned());
        let subject_event =
            message.message.subject.as_str().strip_prefix(self.subjects.notify.as_str());
        let Some(id) = msg_id.as_deref().and_then(MsgId::parse) else {
            return self.reject(acks, reply, subject_event, "no valid Nats-Msg-Id header");
        };
        if subject_event != Some(id.event) {
            return self.reject(acks, reply, subject_event, "its subject and its id disagree");
        }
        if id.origin == self.id || !self.subscribes.iter().any(|s| s == id.event) {
            // Its own notification (delivered locally already), or one without subscribers
            // here (read through the `ns.n.>` filter).
            let _ = acks.send(reply);
            return;
        }
        let registration = crate::registry::event(id.event)
            .filter(|r| r.meta.kind == EventKind::Notification && !r.meta.local);
        let Some(registration) = registration else {
            return self.reject(acks, reply, subject_event, "not a notification of this binary");
        };
        if message.message.payload.len() > super::MAX_EVENT {
            return self.reject(acks, reply, subject_event, "larger than the largest event");
        }
        let key = (id.origin.to_owned(), id.epoch, id.event.to_owned());
        if !seen.entry(key).or_default().insert(id.seq) {
            add(&self.stats.duplicates, 1);
            let _ = acks.send(reply);
            return;
        }
        add(&self.stats.pending_acks, 1);
        let ack = Ack {
            reply,
            acks: acks.clone(),
            link: Arc::downgrade(self),
            abandoned: AtomicBool::new(false),
        };
        let handled = Handled::new(Arc::new(ack));
        let payload = &message.message.payload;
        match (registration.notify_bytes)(ctx.clone(), payload, Some(handled)).await {
            Ok(()) => add(&self.stats.delivered, 1),
            Err(failure) => self.decode_error(id.event, &failure),
        }
    }

    /// A message that is not an event of this application: counted, logged, and
    /// acknowledged (`+TERM`: never delivered again).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_drops_what_was_delivered_and_stays_bounded() {
        let mut seen = Seen::default();
        assert!(seen.insert(0) && seen.insert(2) && seen.insert(1));
        assert!(!seen.insert(1) && !seen.insert(2) && !seen.insert(0));
        assert_eq!((seen.floor, seen.above.len()), (3, 0));
        // Joined late: a hole at the start stays until the limit, then is passed.
        let mut late = Seen::default();
        for seq in 1_000..1_000 + SEEN_LIMIT as u64 + 1 {
            assert!(late.insert(seq));
        }
        assert!(late.above.len() <= SEEN_LIMIT);
        assert!(!late.insert(1_000));
    }

    #[test]
    fn message_ids_parse() {
        let id = MsgId::parse("a-1/17/files.list/42").unwrap();
        assert_eq!(id, MsgId { origin: "a-1", epoch: 17, event: "files.list", seq: 42 });
        assert_eq!(MsgId::parse("garbage"), None);
        assert_eq!(MsgId::parse("a/x/E/1"), None);
    }
}
