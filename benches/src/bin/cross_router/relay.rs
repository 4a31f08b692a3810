//! The raw relay twin of the switch: the physical limit of its topology. Two processes
//! exchange length-prefixed frames through a third, the relay, on 127.0.0.1; no router, no
//! acknowledgement, no retransmission, no catalog, batching everywhere.
//!
//! - Role `relay`: takes two connections, each introducing itself with one byte ([`DRIVER`]
//!   or [`RECEIVER`]), and forwards every complete frame from one to the other, as many per
//!   write as it has read (the switch's job without its routing and counting).
//! - Role `relay-receiver`: counts ticks with [`Tally`], answers echoes, counts and resets;
//!   its answers are written once the frames read so far are handled.
//! - [`RelayTarget`]: the driver's end: one connection, a writer task batching the frames
//!   queued by any number of tasks, a reader task handing each answer to its request by id.
//!
//! A frame is a `u32` little-endian length, then the kind ([`TICK`], ...), then its body:
//! a tick `stream: u32, n: u64` and `PAD` bytes; a request its `id: u64` and its payload.

use super::{Count, PAD, REQUEST_TIMEOUT, Tally};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// The first byte of the driver's connection to the relay.
const DRIVER: u8 = 0;
/// The first byte of the receiver's connection to the relay.
const RECEIVER: u8 = 1;

const TICK: u8 = 0;
const ECHO: u8 = 1;
const COUNT: u8 = 2;
const RESET: u8 = 3;
/// An answer: `id`, then the answer's bytes.
const ANSWER: u8 = 4;

/// Bytes read or written at once.
const BUFFER: usize = 64 << 10;
/// Frames the driver's tasks may queue before they wait.
const QUEUE: usize = 1024;

/// Role `relay`: prints `listening on <addr>`, takes the driver's and the receiver's
/// connections, then forwards frames both ways until either side closes.
pub async fn serve() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("local address: {e}"))?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let (mut driver, mut receiver) = (None, None);
    while driver.is_none() || receiver.is_none() {
        let (mut stream, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        match stream.read_u8().await.map_err(|e| format!("hello: {e}"))? {
            DRIVER => driver = Some(stream),
            RECEIVER => receiver = Some(stream),
            other => return Err(format!("unknown side {other}")),
        }
    }
    let (Some(driver), Some(receiver)) = (driver, receiver) else { unreachable!() };
    let (driver_read, driver_write) = driver.into_split();
    let (receiver_read, receiver_write) = receiver.into_split();
    tokio::select! {
        r = forward(driver_read, receiver_write) => r,
        r = forward(receiver_read, driver_write) => r,
    }
}

/// Forwards the complete frames read from `from` to `to`, all of one read in one write.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) -> Result<(), String> {
    let mut buf = Vec::with_capacity(BUFFER);
    loop {
        if from.read_buf(&mut buf).await.map_err(|e| format!("read: {e}"))? == 0 {
            return Ok(());
        }
        let complete = complete(&buf);
        to.write_all(&buf[..complete]).await.map_err(|e| format!("write: {e}"))?;
        buf.drain(..complete);
        buf.reserve(BUFFER);
    }
}

/// The length of the complete frames at the start of `buf`.
fn complete(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = buf.get(at..at + 4) {
        let end = at + 4 + u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

/// Appends a frame of `kind` with `parts` as its body to `out`.
fn frame(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    out.push(kind);
    parts.iter().for_each(|p| out.extend_from_slice(p));
}

/// Calls `each` with the kind and body of every complete frame at the start of `buf`, then
/// drops them from it.
fn frames(buf: &mut Vec<u8>, mut each: impl FnMut(u8, &[u8])) {
    let end = complete(buf);
    let mut at = 0;
    while at < end {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
        if len > 0 {
            each(buf[at + 4], &buf[at + 5..at + 4 + len]);
        }
        at += 4 + len;
    }
    buf.drain(..end);
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    body.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// Role `relay-receiver`: connects to the relay at `addr`, prints `ready`, then counts and
/// answers until the relay closes.
pub async fn receive(addr: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    stream.write_u8(RECEIVER).await.map_err(|e| format!("hello: {e}"))?;
    println!("ready");
    let _ = std::io::stdout().flush();
    let (mut read, mut write) = stream.into_split();
    let mut tally = Tally::default();
    let (mut buf, mut out) = (Vec::with_capacity(BUFFER), Vec::with_capacity(BUFFER));
    loop {
        if read.read_buf(&mut buf).await.map_err(|e| format!("read: {e}"))? == 0 {
            return Ok(());
        }
        frames(&mut buf, |kind, body| {
            let id = body.get(..8).unwrap_or_default();
            match kind {
                TICK => {
                    let stream = body.get(..4).and_then(|b| b.try_into().ok());
                    tally.tick(stream.map_or(0, u32::from_le_bytes), u64_at(body, 4));
                }
                ECHO => frame(&mut out, ANSWER, &[body]),
                COUNT => {
                    let c = tally.count();
                    let counts = [c.received, c.duplicates, c.gaps].map(u64::to_le_bytes);
                    frame(&mut out, ANSWER, &[id, &counts[0], &counts[1], &counts[2]]);
                }
                RESET => {
                    tally = Tally::default();
                    frame(&mut out, ANSWER, &[id]);
                }
                _ => {}
            }
        });
        if !out.is_empty() {
            write.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
            out.clear();
        }
        buf.reserve(BUFFER);
    }
}

/// The driver's end of the relay: cheap to clone, used by many tasks at once.
#[derive(Clone)]
pub struct RelayTarget {
    frames: mpsc::Sender<Vec<u8>>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    ids: Arc<AtomicU64>,
}

impl RelayTarget {
    /// Connects to the relay at `addr` as its driver.
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        stream.write_u8(DRIVER).await.map_err(|e| format!("hello: {e}"))?;
        let (read, write) = stream.into_split();
        let (frames, queued) = mpsc::channel(QUEUE);
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        tokio::spawn(write_frames(write, queued));
        tokio::spawn(read_answers(read, waiting.clone()));
        Ok(Self { frames, waiting, ids: Arc::default() })
    }

    /// Sends a request of `kind` with `payload`; its answer's bytes after the id.
    async fn call(&self, kind: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        let mut bytes = Vec::with_capacity(13 + payload.len());
        frame(&mut bytes, kind, &[&id.to_le_bytes(), payload]);
        self.frames.send(bytes).await.map_err(|_| "the relay link is gone".to_owned())?;
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the relay link is gone".into()),
            Err(_) => {
                self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }

    pub async fn reset(&self) -> Result<(), String> {
        self.call(RESET, &[]).await.map(drop)
    }

    pub async fn count(&self) -> Result<Count, String> {
        let answer = self.call(COUNT, &[]).await?;
        let at = |i: usize| u64_at(&answer, i * 8);
        Ok(Count { received: at(0), duplicates: at(1), gaps: at(2) })
    }

    /// Sends ticks `0..count` of `stream` until done or `stop_at`; how many were sent.
    pub async fn send_stream(
        self,
        stream: u32,
        count: u64,
        stop_at: Instant,
    ) -> (u64, Option<String>) {
        let pad = [0xA5; PAD];
        for n in 0..count {
            if n % 1024 == 0 && Instant::now() >= stop_at {
                return (n, None);
            }
            let mut bytes = Vec::with_capacity(17 + PAD);
            frame(&mut bytes, TICK, &[&stream.to_le_bytes(), &n.to_le_bytes(), &pad]);
            if self.frames.send(bytes).await.is_err() {
                return (n, Some("the relay link is gone".into()));
            }
        }
        (count, None)
    }

    /// One echo round trip, timed.
    pub async fn echo(&self, pad: &Bytes) -> Result<Duration, String> {
        let t0 = Instant::now();
        let back = self.call(ECHO, pad).await?;
        let took = t0.elapsed();
        if back == **pad { Ok(took) } else { Err(format!("wrong echo: {} bytes", back.len())) }
    }
}

/// Writes the queued frames, as many per write as are queued.
async fn write_frames(mut write: OwnedWriteHalf, mut queued: mpsc::Receiver<Vec<u8>>) {
    let mut out = Vec::with_capacity(BUFFER);
    while let Some(first) = queued.recv().await {
        out.extend_from_slice(&first);
        while out.len() < BUFFER {
            match queued.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if write.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// Hands each answer to the request waiting for its id; ends the waits when the link ends.
async fn read_answers(
    mut read: OwnedReadHalf,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
) {
    let mut buf = Vec::with_capacity(BUFFER);
    while matches!(read.read_buf(&mut buf).await, Ok(n) if n > 0) {
        let mut answers = Vec::new();
        frames(&mut buf, |kind, body| {
            if kind == ANSWER {
                answers.push((u64_at(body, 0), body.get(8..).unwrap_or_default().to_vec()));
            }
        });
        let mut waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, answer) in answers {
            if let Some(tx) = waiting.remove(&id) {
                let _ = tx.send(answer);
            }
        }
        drop(waiting);
        buf.reserve(BUFFER);
    }
    waiting.lock().unwrap_or_else(PoisonError::into_inner).clear();
}
