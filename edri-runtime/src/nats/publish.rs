//! Notifications into the JetStream stream: kept in memory (bounded in bytes) until JetStream
//! acknowledged them, published pipelined (many acknowledgements awaited at once) and batched
//! (the notifications of one event queued when the publisher wakes share one message),
//! published again with the same `Nats-Msg-Id` and the same contents when an acknowledgement
//! fails, given up beyond the outage window.
//!
//! A message holds one notification (its payload as is), or `n > 1` consecutive ones of one
//! event: header `Edri-Count: n`, payload `n` times a little-endian `u32` length and the
//! event's bytes. Its id names the sequence of the first; the others follow it.

use super::metrics::{Stats, add, sub};
use crate::Failure;
use crate::trace::TraceContext;
use async_nats::jetstream::{self, context::Publish};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// How long a failed publish waits before it is sent again.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// The W3C trace context header: the sending handler's trace link ([`crate::trace`]), on
/// notifications and requests.
pub(super) const TRACEPARENT: &str = "traceparent";

/// The header with the publisher's floor of the event: every sequence below it is in the
/// stream before this message.
pub(super) const FLOOR_HEADER: &str = "Edri-Floor";
/// The header with the number of notifications in a batched message (absent: one).
pub(super) const COUNT_HEADER: &str = "Edri-Count";
/// What one kept event costs beyond its payload (subject, id, bookkeeping).
const OVERHEAD: usize = 64;
/// Notifications taken from the queue at once, and in one message at most.
const MAX_BATCH: usize = 256;
/// Payload bytes of a batched message at most (and at most the largest event).
const MAX_BATCH_BYTES: usize = 64 << 10;

/// A notification on its way to the stream.
struct Outgoing {
    event: &'static str,
    payload: Bytes,
    /// The sending handler's trace link ([`crate::trace`]).
    trace: Option<TraceContext>,
    room: OwnedSemaphorePermit,
}

/// Notifications published in one message, waiting for (or failing) its acknowledgement.
struct Pending {
    event: &'static str,
    /// The sequence of the first; the others follow it.
    seq: u64,
    /// How many (`seq..seq + count`).
    count: u64,
    /// The lowest sequence of its event not acknowledged by JetStream when it was numbered:
    /// everything below is in the stream before it.
    floor: u64,
    subject: String,
    msg_id: String,
    payload: Bytes,
    trace: Option<TraceContext>,
    first: Instant,
    _room: OwnedSemaphorePermit,
}

/// Queued notifications of one event, in their order, for one message.
struct Batch {
    event: &'static str,
    /// The senders' trace link: only notifications with the same one share a message.
    trace: Option<TraceContext>,
    items: Vec<Outgoing>,
    /// Payload bytes of the items framed (4 + length each).
    framed: usize,
}

impl Batch {
    /// The message's payload (framed when more than one) and the room the items took.
    fn pack(self) -> (Bytes, OwnedSemaphorePermit) {
        let mut items = self.items.into_iter();
        let Some(Outgoing { payload, mut room, .. }) = items.next() else {
            unreachable!("a batch is never empty")
        };
        let mut rest = items.peekable();
        if rest.peek().is_none() {
            return (payload, room);
        }
        let mut framed = Vec::with_capacity(self.framed);
        for payload in std::iter::once(payload).chain(rest.map(|item| {
            room.merge(item.room);
            item.payload
        })) {
            // At most `MAX_BATCH_BYTES`: fits in a u32.
            framed
                .extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
            framed.extend_from_slice(&payload);
        }
        (framed.into(), room)
    }
}

/// `first` and what else is queued now (at most `MAX_BATCH` in all), grouped into batches
/// of one event each (each event's order kept), each at most `limit` bytes as a message (a
/// single larger notification is a batch of its own).
fn gather(first: Outgoing, rx: &mut mpsc::UnboundedReceiver<Outgoing>, limit: usize) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(item) = next.take() {
        taken += 1;
        let framed = 4 + item.payload.len();
        match batches.iter_mut().rev().find(|b| b.event == item.event) {
            Some(b)
                if b.trace == item.trace
                    && b.items.len() < MAX_BATCH
                    && b.framed + framed <= limit =>
            {
                b.framed += framed;
                b.items.push(item);
            }
            // Alone, a notification is not framed: it may be `limit` bytes.
            _ => batches.push(Batch {
                event: item.event,
                trace: item.trace,
                framed,
                items: vec![item],
            }),
        }
        if taken < MAX_BATCH {
            next = rx.try_recv().ok();
        }
    }
    batches
}

/// A publish and its stream sequence, or `None` when it failed.
type Acked = Pin<Box<dyn Future<Output = (Pending, Option<u64>)> + Send>>;

/// The senders' side: room in the buffer, the queue to the publisher task.
pub(super) struct Outbox {
    room: Arc<Semaphore>,
    capacity: usize,
    max_event: usize,
    tx: mpsc::UnboundedSender<Outgoing>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
}

impl Outbox {
    pub(super) fn new(capacity: usize, max_event: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = capacity.min(Semaphore::MAX_PERMITS);
        let room = Arc::new(Semaphore::new(capacity));
        Self { room, capacity, max_event, tx, rx: Mutex::new(Some(rx)) }
    }

    /// What `payload` costs in the buffer.
    fn cost(&self, payload: &[u8]) -> Result<u32, Failure> {
        if payload.len() > self.max_event {
            return Err(Failure::invalid(format!(
                "the event is {} bytes: more than the {} a router sends through NATS",
                payload.len(),
                self.max_event
            )));
        }
        Ok(u32::try_from((payload.len() + OVERHEAD).min(self.capacity)).unwrap_or(u32::MAX))
    }

    /// Keeps notification `event` for the publisher, waiting for room in the buffer.
    pub(super) async fn push(
        &self,
        event: &'static str,
        payload: Vec<u8>,
        stats: &Stats,
    ) -> Result<(), Failure> {
        let cost = self.cost(&payload)?;
        let trace = crate::trace::context();
        let room = self.room.clone().acquire_many_owned(cost).await.map_err(|_| stopping())?;
        self.send(Outgoing { event, payload: payload.into(), trace, room }, stats)
    }

    /// Keeps notification `event` now, or refuses it (the buffer is full).
    pub(super) fn try_push(
        &self,
        event: &'static str,
        payload: &[u8],
        stats: &Stats,
    ) -> Result<(), Failure> {
        let cost = self.cost(payload)?;
        let room = self
            .room
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| Failure::unavailable("the buffer for other routers is full"))?;
        let (payload, trace) = (Bytes::copy_from_slice(payload), crate::trace::context());
        self.send(Outgoing { event, payload, trace, room }, stats)
    }

    fn send(&self, outgoing: Outgoing, stats: &Stats) -> Result<(), Failure> {
        add(&stats.buffered, 1);
        self.tx.send(outgoing).map_err(|_| {
            sub(&stats.buffered, 1);
            stopping()
        })
    }

    /// Senders waiting for room fail from now on.
    pub(super) fn close(&self) {
        self.room.close();
    }

    /// The publisher's end of the queue (once).
    fn take(&self) -> Option<mpsc::UnboundedReceiver<Outgoing>> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

fn stopping() -> Failure {
    Failure::unavailable("the router is stopping; not sent to other routers")
}

/// Who publishes, under which names.
pub(super) struct Publisher {
    pub(super) js: jetstream::Context,
    pub(super) namespace: String,
    pub(super) id: String,
    pub(super) epoch: u64,
    pub(super) in_flight: usize,
    pub(super) window: Duration,
    pub(super) max_event: usize,
    pub(super) stats: Arc<Stats>,
}

impl Publisher {
    /// Publishes what `outbox` receives, until the router stops. What failed is published
    /// again before anything new.
    pub(super) async fn run(self, outbox: &Outbox) {
        let Some(mut rx) = outbox.take() else { return };
        let mut seqs: HashMap<&'static str, u64> = HashMap::new();
        let mut unacked: HashMap<&'static str, BTreeSet<u64>> = HashMap::new();
        let mut waiting: FuturesOrdered<Acked> = FuturesOrdered::new();
        let mut retry: VecDeque<Pending> = VecDeque::new();
        let mut retry_at = tokio::time::Instant::now();
        loop {
            let room = waiting.len() < self.in_flight;
            let retrying = !retry.is_empty();
            tokio::select! {
                biased;
                Some((pending, sequence)) = waiting.next(), if !waiting.is_empty() => {
                    if let Some(pending) = self.acked(pending, sequence, &mut unacked) {
                        retry.push_back(pending);
                    }
                }
                () = tokio::time::sleep_until(retry_at), if room && retrying => {
                    while waiting.len() < self.in_flight {
                        let Some(pending) = retry.pop_front() else { break };
                        add(&self.stats.republished, 1);
                        self.publish(pending, &mut waiting, &mut retry).await;
                    }
                    retry_at = tokio::time::Instant::now() + RETRY_DELAY;
                }
                outgoing = rx.recv(), if room && !retrying => {
                    let Some(first) = outgoing else { return };
                    let limit = MAX_BATCH_BYTES.min(self.max_event);
                    for batch in gather(first, &mut rx, limit) {
                        let event = batch.event;
                        let count = batch.items.len() as u64;
                        let seq = seqs.entry(event).or_insert(0);
                        // A batch is kept (and holds back the floor) under its first sequence.
                        let kept = unacked.entry(event).or_default();
                        let floor = kept.first().copied().unwrap_or(*seq);
                        kept.insert(*seq);
                        let trace = batch.trace;
                        let (payload, room) = batch.pack();
                        let pending = Pending {
                            event,
                            seq: *seq,
                            count,
                            floor,
                            subject: format!("{}.n.{event}", self.namespace),
                            msg_id: format!("{}/{}/{event}/{seq}", self.id, self.epoch),
                            payload,
                            trace,
                            first: Instant::now(),
                            _room: room,
                        };
                        *seq += count;
                        self.publish(pending, &mut waiting, &mut retry).await;
                    }
                }
            }
            if !retrying && !retry.is_empty() {
                retry_at = tokio::time::Instant::now() + RETRY_DELAY;
            }
        }
    }

    /// Hands `pending` to the client; its acknowledgement joins `waiting`.
    async fn publish(
        &self,
        pending: Pending,
        waiting: &mut FuturesOrdered<Acked>,
        retry: &mut VecDeque<Pending>,
    ) {
        let mut publish = Publish::build()
            .payload(pending.payload.clone())
            .message_id(pending.msg_id.as_str())
            .header(FLOOR_HEADER, pending.floor.to_string().as_str());
        if let Some(trace) = pending.trace {
            publish = publish.header(TRACEPARENT, trace.traceparent().as_str());
        }
        if pending.count > 1 {
            publish = publish.header(COUNT_HEADER, pending.count.to_string().as_str());
        }
        match self.js.send_publish(pending.subject.clone(), publish).await {
            Ok(ack) => waiting.push_back(Box::pin(async move {
                let sequence = ack.await.ok().map(|ack| ack.sequence);
                (pending, sequence)
            })),
            Err(error) => {
                tracing::debug!(%error, "publish failed; sending it again");
                retry.push_back(pending);
            }
        }
    }

    /// The acknowledgement of `pending` came (its stream `sequence`), or failed: what to
    /// publish again, if not given up.
    fn acked(
        &self,
        pending: Pending,
        sequence: Option<u64>,
        unacked: &mut HashMap<&'static str, BTreeSet<u64>>,
    ) -> Option<Pending> {
        if let Some(sequence) = sequence {
            add(&self.stats.published, pending.count);
            self.stats.last_sequence.fetch_max(sequence, std::sync::atomic::Ordering::Relaxed);
        } else if pending.first.elapsed() > self.window {
            add(&self.stats.lost, pending.count);
            tracing::warn!(
                id = %pending.msg_id,
                count = pending.count,
                window = ?self.window,
                "notifications not acknowledged by JetStream within the outage window were given up"
            );
        } else {
            return Some(pending);
        }
        sub(&self.stats.buffered, pending.count);
        // No longer holds back the floor of its event.
        if let Some(kept) = unacked.get_mut(pending.event) {
            kept.remove(&pending.seq);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(room: &Arc<Semaphore>, event: &'static str, n: u8, trace: u64) -> Outgoing {
        Outgoing {
            event,
            payload: Bytes::from(vec![n]),
            trace: (trace > 0).then_some(TraceContext { trace: 7, span: trace }),
            room: room.clone().try_acquire_owned().expect("room"),
        }
    }

    /// Shapes of `batches`: `(event, span of the trace link, payloads)`.
    fn shapes(batches: &[Batch]) -> Vec<(&'static str, u64, Vec<u8>)> {
        let shape = |b: &Batch| {
            let payloads = b.items.iter().map(|i| i.payload[0]).collect();
            (b.event, b.trace.map_or(0, |t| t.span), payloads)
        };
        batches.iter().map(shape).collect()
    }

    #[test]
    fn notifications_batch_per_event_and_trace_link_in_order() {
        let room = Arc::new(Semaphore::new(64));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sent = [("A", 1, 0), ("A", 2, 0), ("B", 3, 0), ("A", 4, 9), ("A", 5, 9), ("A", 6, 0)];
        for (event, n, trace) in sent {
            tx.send(outgoing(&room, event, n, trace)).unwrap();
        }
        let first = rx.try_recv().unwrap();
        let batches = gather(first, &mut rx, MAX_BATCH_BYTES);
        // Another trace link starts another message; each event keeps its order.
        assert_eq!(
            shapes(&batches),
            [("A", 0, vec![1, 2]), ("B", 0, vec![3]), ("A", 9, vec![4, 5]), ("A", 0, vec![6])]
        );
        let (payload, permit) = batches.into_iter().next().unwrap().pack();
        assert_eq!(&payload[..], &[1, 0, 0, 0, 1, 1, 0, 0, 0, 2]);
        assert_eq!(permit.num_permits(), 2);
    }
}
