//! The raw twin of EDRI's NATS transport: the same work written with async-nats directly.
//!
//! - Notifications: ticks (`stream: u32`, `n: u64`, `PAD` bytes) published into a
//!   file-storage JetStream stream with a `Nats-Msg-Id` each; every sender task keeps up to
//!   [`WINDOW`] publishes unacknowledged and awaits the oldest acknowledgement when the window
//!   is full. The receiver (role `raw-receiver`, its own process) reads them through a durable
//!   pull consumer, acknowledges each one and counts each stream's order with [`Tally`].
//! - Requests: core NATS request/reply (`Client::request`) to an echo responder in the
//!   receiver's process, which publishes each payload back to the reply subject.
//! - Counting and resetting the receiver's tally: core NATS requests too.
//!
//! The stream, its consumer and the subjects are named after the run's namespace, like the
//! EDRI routers' (`<ns>_notifications`, `<ns>.n.tick`, ...), with the same settings.

use super::{Count, PAD, REQUEST_TIMEOUT, Tally};
use async_nats::jetstream::{self, consumer, context::Publish, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Publishes awaiting their acknowledgement at once, per sender task.
pub const WINDOW: usize = 256;
/// The consumer's `max_ack_pending` and fetch batch (as EDRI's defaults: 4 096 and 1 000).
const MAX_ACK_PENDING: i64 = 4_096;
const BATCH: usize = 1_000;
/// Retention of the stream and its duplicate window (EDRI's default outage window).
const WINDOW_AGE: Duration = Duration::from_secs(60);

/// The names of one run.
struct Names {
    stream: String,
    tick: String,
    count: String,
    reset: String,
    echo: String,
}

impl Names {
    fn new(namespace: &str) -> Self {
        Self {
            stream: format!("{namespace}_notifications"),
            tick: format!("{namespace}.n.tick"),
            count: format!("{namespace}.count"),
            reset: format!("{namespace}.reset"),
            echo: format!("{namespace}.echo"),
        }
    }
}

fn encode(stream: u32, n: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(12 + PAD);
    bytes.extend_from_slice(&stream.to_le_bytes());
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes.resize(12 + PAD, 0xA5);
    bytes.into()
}

fn decode(bytes: &[u8]) -> Option<(u32, u64)> {
    let stream = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let n = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
    Some((stream, n))
}

/// Role `raw-receiver`: creates the stream and the durable consumer, counts the ticks, answers
/// echoes, counts and resets; prints `ready`, then serves until the process ends.
pub async fn serve(url: &str, namespace: &str) -> Result<(), String> {
    let names = Names::new(namespace);
    let client = async_nats::connect(url).await.map_err(|e| format!("connect {url}: {e}"))?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(stream::Config {
            name: names.stream.clone(),
            subjects: vec![format!("{namespace}.n.>")],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            max_age: WINDOW_AGE,
            duplicate_window: WINDOW_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", names.stream))?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("receiver".into()),
            filter_subject: names.tick.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(5),
            max_ack_pending: MAX_ACK_PENDING,
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer: {e}"))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .map_err(|e| format!("consume: {e}"))?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let lock = |tally: &Mutex<Tally>| tally.lock().unwrap_or_else(PoisonError::into_inner).count();
    let counting = tally.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            if let Some((stream, n)) = decode(&message.payload) {
                counting.lock().unwrap_or_else(PoisonError::into_inner).tick(stream, n);
            }
            let _ = message.ack().await;
        }
    });
    let mut echoes = client.subscribe(names.echo).await.map_err(|e| e.to_string())?;
    let mut counts = client.subscribe(names.count).await.map_err(|e| e.to_string())?;
    let mut resets = client.subscribe(names.reset).await.map_err(|e| e.to_string())?;
    println!("ready");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    loop {
        let (message, answer) = tokio::select! {
            Some(m) = echoes.next() => { let back = m.payload.clone(); (m, back) }
            Some(m) = counts.next() => {
                let c = lock(&tally);
                let words = [c.received, c.duplicates, c.gaps];
                (m, words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<_>>().into())
            }
            Some(m) = resets.next() => {
                *tally.lock().unwrap_or_else(PoisonError::into_inner) = Tally::default();
                (m, Bytes::new())
            }
            else => return Ok(()),
        };
        if let Some(reply) = message.reply {
            let _ = client.publish(reply, answer).await;
        }
    }
}

/// Tells the runs' publishes apart in their `Nats-Msg-Id`.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The driver's side.
#[derive(Clone)]
pub struct RawTarget {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Arc<Names>,
}

impl RawTarget {
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, String> {
        let client = async_nats::connect(url).await.map_err(|e| format!("connect {url}: {e}"))?;
        let js = jetstream::new(client.clone());
        Ok(Self { client, js, names: Arc::new(Names::new(namespace)) })
    }

    async fn call(&self, subject: &str, payload: Bytes) -> Result<Bytes, String> {
        let answer = self.client.request(subject.to_owned(), payload);
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(message)) => Ok(message.payload),
            Ok(Err(e)) => Err(format!("{subject}: {e}")),
            Err(_) => Err(format!("{subject}: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }

    pub async fn reset(&self) -> Result<(), String> {
        self.call(&self.names.reset, Bytes::new()).await.map(drop)
    }

    pub async fn count(&self) -> Result<Count, String> {
        let bytes = self.call(&self.names.count, Bytes::new()).await?;
        let word = |i: usize| {
            bytes.get(i * 8..i * 8 + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes)
        };
        match (word(0), word(1), word(2)) {
            (Some(received), Some(duplicates), Some(gaps)) => {
                Ok(Count { received, duplicates, gaps })
            }
            _ => Err(format!("a count of {} bytes", bytes.len())),
        }
    }

    /// Publishes ticks `0..count` of `stream`, [`WINDOW`] unacknowledged at most; returns how
    /// many were published and acknowledged.
    pub async fn send_stream(
        self,
        stream: u32,
        count: u64,
        stop_at: Instant,
    ) -> (u64, Option<String>) {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut window = VecDeque::with_capacity(WINDOW);
        let mut acked = 0;
        let mut failure = None;
        for n in 0..count {
            if n % 1024 == 0 && Instant::now() >= stop_at {
                break;
            }
            if window.len() == WINDOW {
                let Some(ack) = window.pop_front() else { break };
                if let Err(e) = ack.await {
                    failure = Some(format!("acknowledgement: {e}"));
                    break;
                }
                acked += 1;
            }
            let publish = Publish::build()
                .payload(encode(stream, n))
                .message_id(format!("raw/{run}/{stream}/{n}"));
            match self.js.send_publish(self.names.tick.clone(), publish).await {
                Ok(ack) => window.push_back(ack),
                Err(e) => {
                    failure = Some(format!("publish: {e}"));
                    break;
                }
            }
        }
        for ack in window {
            match ack.await {
                Ok(_) => acked += 1,
                Err(e) => failure = Some(format!("acknowledgement: {e}")),
            }
        }
        (acked, failure)
    }

    /// One echo round trip, timed.
    pub async fn echo(&self, pad: &Bytes) -> Result<Duration, String> {
        let t0 = Instant::now();
        let back = self.call(&self.names.echo, pad.clone()).await?;
        let took = t0.elapsed();
        if back == pad { Ok(took) } else { Err(format!("wrong echo: {} bytes", back.len())) }
    }
}
