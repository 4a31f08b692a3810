//! The events and managers of the bench: ticks counted in order, echoes, the tunnel sink.

use edri::prelude::*;
use std::collections::HashMap;

/// One notification of an ordered stream: `n` counts from 0 in each `stream`.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct CrossTick {
    /// Which sender.
    pub stream: u32,
    /// Its position in the stream.
    pub n: u64,
    /// `PAD` bytes.
    pub pad: Vec<u8>,
}

/// What the receiver's [`Sink`] saw.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossCount {
    /// Ticks received in order.
    #[response]
    pub received: u64,
    /// Ticks seen again (`n` not above the stream's last).
    #[response]
    pub duplicates: u64,
    /// Ticks that skipped ahead (`n` above the stream's last + 1).
    #[response]
    pub gaps: u64,
}

/// Forgets every stream and count.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossReset {}

/// Answered with its own payload.
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossEcho {
    /// `PAD` bytes.
    pub pad: Vec<u8>,
    /// The same bytes, back.
    #[response]
    pub back: Vec<u8>,
}

/// A one-way stream of chunks; the acceptor answers with the bytes it received.
#[event(tunnel, send = edri::Chunk, receive = u64)]
pub struct CrossStream {}

/// Accepts [`CrossStream`].
pub struct StreamSink;

#[manager]
impl StreamSink {
    #[solve]
    pub(crate) fn stream(&mut self, _: &CrossStream, opening: Opening<CrossStream>, ctx: &Ctx) {
        let Ok(mut end) = opening.accept() else { return };
        ctx.spawn(async move {
            let mut bytes = 0u64;
            while let Some(chunk) = end.recv().await? {
                bytes += chunk.len() as u64;
            }
            end.send(bytes).await?;
            end.close();
            Ok::<_, Failure>(())
        });
    }
}

/// Answered by the driver's own router (a router needs a manager).
#[event(request)]
#[derive(Debug, Clone)]
pub struct CrossPing {}

/// What a receiver saw of the ticks.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) gaps: u64,
}

/// Counts ticks and checks each stream's order (the EDRI receiver's and the raw one's).
#[derive(Default)]
pub struct Tally {
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) gaps: u64,
    /// The next `n` expected from each stream.
    pub(crate) next: HashMap<u32, u64>,
}

impl Tally {
    pub(crate) fn tick(&mut self, stream: u32, n: u64) {
        let next = self.next.entry(stream).or_insert(0);
        if n < *next {
            self.duplicates += 1;
            return;
        }
        if n > *next {
            self.gaps += 1;
        }
        *next = n + 1;
        self.received += 1;
    }

    pub(crate) fn count(&self) -> Count {
        Count { received: self.received, duplicates: self.duplicates, gaps: self.gaps }
    }
}

/// Counts ticks and checks each stream's order.
#[derive(Default)]
pub struct Sink(Tally);

#[manager]
impl Sink {
    #[solve]
    pub(crate) fn tick(&mut self, ev: &CrossTick) {
        self.0.tick(ev.stream, ev.n);
    }

    #[solve]
    pub(crate) fn count(&mut self, _: &CrossCount) -> CrossCountResponse {
        let Count { received, duplicates, gaps } = self.0.count();
        CrossCountResponse { received, duplicates, gaps }
    }

    #[solve]
    pub(crate) fn reset(&mut self, _: &CrossReset) -> CrossResetResponse {
        *self = Self::default();
        CrossResetResponse {}
    }
}

/// Answers [`CrossEcho`].
pub struct Echoer;

#[manager]
impl Echoer {
    #[solve]
    pub(crate) fn echo(&mut self, ev: &CrossEcho) -> CrossEchoResponse {
        CrossEchoResponse { back: ev.pad.clone() }
    }
}

/// The driver router's one manager.
pub struct Ctl;

#[manager]
impl Ctl {
    #[solve]
    pub(crate) fn ping(&mut self, _: &CrossPing) -> CrossPingResponse {
        CrossPingResponse {}
    }
}
