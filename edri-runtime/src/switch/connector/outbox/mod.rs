//! Events kept for other routers until they acknowledge them, and what goes to the switch next.
//!
//! Each destination router has a stream numbered from 0: entry `i` of a stream has sequence
//! `acked + i`. An event stays until its destination acknowledges it (acknowledgements are
//! cumulative) or until it is older than the outage window: then it is given up and counted
//! as lost. After a reconnection, a resend request or a silence of [`RETRANSMIT_MS`], a stream
//! is sent again from its first unacknowledged event. At most `window` events of one stream are
//! in flight.
//!
//! An event is encoded once, straight into its stream's [`Log`] (a copy for each further
//! destination), and copied from there into the write buffer each time it is sent.
//!
//! No I/O and no clock here: `now` is milliseconds on the connector's clock, passed in.

mod log;

use super::progress::Progress;
use crate::Failure;
use crate::framing::{FrameError, push_frame};
use crate::router::FastMap;
use crate::switch::WRITE_BATCH;
use crate::switch::frame::{Item, ToSwitch, push_data, write_item};
use log::Log;
use std::collections::VecDeque;
use std::sync::Arc;

/// An acknowledgement waits at most this long (ms) for data to ride along with.
const ACK_DELAY_MS: u64 = 1;
/// Items in one `Data` frame at most.
const BATCH_ITEMS: usize = 1024;
/// Bytes a kept event costs beyond its own: its [`Entry`] (16) and the slack of the growing
/// buffers, counted conservatively.
const ENTRY_OVERHEAD: usize = 48;
/// In-flight events without any acknowledgement for this long are sent again.
const RETRANSMIT_MS: u64 = 3_000;

/// Events kept for other routers, by destination, and the acknowledgements and resend
/// requests this router owes the others.
pub(super) struct Outbox {
    streams: FastMap<Arc<str>, Stream>,
    /// Bytes kept, over all streams.
    bytes: usize,
    /// Bytes kept before senders wait.
    buffer: usize,
    /// Events of one stream in flight at most.
    window: u64,
    /// How long an unacknowledged event is kept (ms).
    outage_ms: u64,
    /// Acknowledgements to send: origin → (its epoch, next).
    acks: FastMap<Arc<str>, (u64, u64)>,
    /// Origins whose handled prefix moved since their last acknowledgement: read when sent.
    progressed: Vec<(Arc<str>, Arc<Progress>)>,
    /// An event for several routers, encoded once and copied to each.
    scratch: Vec<u8>,
    /// When the pending acknowledgements must go even without data (ms).
    acks_due: Option<u64>,
    /// Resend requests to send: (origin, its epoch, from).
    resends: Vec<(Arc<str>, u64, u64)>,
}

/// This router's stream to one other router. Entry `i` has sequence `acked + i`.
struct Stream {
    /// Everything below was acknowledged (or given up).
    acked: u64,
    /// The next sequence to transmit.
    sent: u64,
    entries: VecDeque<Entry>,
    /// The bytes of `entries`, in order.
    log: Log,
    /// Whether the destination is connected to the switch.
    up: bool,
    /// When the stream last made progress (ms), for retransmission.
    progress: u64,
}

struct Entry {
    /// The log position after its bytes (they begin where the previous entry's end).
    end: u64,
    /// When it was queued (ms).
    at: u64,
}

impl Stream {
    fn new(up: bool, now: u64) -> Self {
        let (entries, log) = (VecDeque::new(), Log::default());
        Self { acked: 0, sent: 0, entries, log, up, progress: now }
    }

    /// The log position where entry `i` begins.
    fn begin(&self, i: usize) -> u64 {
        if i == 0 { self.log.start() } else { self.entries[i - 1].end }
    }

    /// The bytes of entry `i`.
    fn item(&self, i: usize) -> &[u8] {
        self.log.slice(self.begin(i), self.entries[i].end)
    }

    /// Keeps the item just appended to the log.
    fn keep(&mut self, now: u64) {
        self.entries.push_back(Entry { end: self.log.end(), at: now });
    }

    fn next(&self) -> u64 {
        self.acked + self.entries.len() as u64
    }

    /// Sends everything unacknowledged again; returns how many events that is.
    fn rewind(&mut self, now: u64) -> u64 {
        let again = self.sent - self.acked;
        self.sent = self.acked;
        self.progress = now;
        again
    }

    /// Drops the first `n` entries (acknowledged or given up); returns the bytes freed.
    fn pop(&mut self, n: u64) -> usize {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(self.entries.len());
        self.acked += n as u64;
        self.sent = self.sent.max(self.acked);
        if n == 0 {
            return 0;
        }
        let (start, end) = (self.log.start(), self.entries[n - 1].end);
        self.entries.drain(..n);
        self.log.free_to(end);
        usize::try_from(end - start).unwrap_or(usize::MAX) + n * ENTRY_OVERHEAD
    }
}

/// Adds the acknowledgement `(epoch, next)` for router `from` to `acks`. Handlers finish on
/// several threads: never let an older acknowledgement replace a newer one of the same run.
fn merge(acks: &mut FastMap<Arc<str>, (u64, u64)>, from: &Arc<str>, epoch: u64, next: u64) {
    match acks.get_mut(from) {
        Some(ack) if ack.0 == epoch => ack.1 = ack.1.max(next),
        Some(ack) => *ack = (epoch, next),
        None => {
            acks.insert(from.clone(), (epoch, next));
        }
    }
}

/// The stream to router `id`, created (not connected) when there is none yet.
fn stream_to<'a>(
    streams: &'a mut FastMap<Arc<str>, Stream>,
    id: &Arc<str>,
    now: u64,
) -> &'a mut Stream {
    if !streams.contains_key(id) {
        streams.insert(id.clone(), Stream::new(false, now));
    }
    streams.get_mut(id).unwrap_or_else(|| unreachable!("inserted above"))
}

/// What one kept item of `len` bytes costs the buffer.
fn cost(len: usize) -> usize {
    len + ENTRY_OVERHEAD
}

/// What [`Outbox::expire`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Expired {
    /// Events unacknowledged beyond the outage window, given up, by destination.
    pub(super) lost: Vec<(Arc<str>, u64)>,
    /// Events sent again to connected routers that acknowledged nothing for a while.
    pub(super) resent: u64,
}

impl Outbox {
    /// An empty outbox keeping at most `buffer` bytes, `window` events in flight per stream,
    /// and events for `outage_ms` at most.
    pub(super) fn new(buffer: usize, window: u64, outage_ms: u64) -> Self {
        Self {
            streams: FastMap::default(),
            bytes: 0,
            buffer,
            window,
            outage_ms,
            acks: FastMap::default(),
            progressed: Vec::new(),
            scratch: Vec::new(),
            acks_due: None,
            resends: Vec::new(),
        }
    }

    /// Encodes `item` into the stream of each router in `to`. `Ok(None)` when the buffer is
    /// full (unless `force`: responses must not wait behind the events they answer);
    /// otherwise whether any of them is connected, that is whether there is something to send
    /// now.
    ///
    /// # Errors
    /// When the item cannot be encoded ([`write_item`]): nothing is kept.
    pub(super) fn push(
        &mut self,
        to: &[Arc<str>],
        item: &Item<'_>,
        force: bool,
        now: u64,
    ) -> Result<Option<bool>, Failure> {
        let Some((first, rest)) = to.split_first() else { return Ok(Some(false)) };
        let stream = stream_to(&mut self.streams, first, now);
        let from = stream.log.end();
        write_item(stream.log.buf(), item)?;
        let len = usize::try_from(stream.log.end() - from).unwrap_or(usize::MAX);
        let total = cost(len) * to.len();
        if !force && self.bytes > 0 && self.bytes + total > self.buffer {
            stream.log.truncate(from);
            return Ok(None);
        }
        stream.keep(now);
        let mut sendable = stream.up;
        if !rest.is_empty() {
            self.scratch.clear();
            self.scratch.extend_from_slice(stream.log.slice(from, stream.log.end()));
            for id in rest {
                let stream = stream_to(&mut self.streams, id, now);
                stream.log.buf().extend_from_slice(&self.scratch);
                stream.keep(now);
                sendable |= stream.up;
            }
        }
        self.bytes += total;
        Ok(Some(sendable))
    }

    /// Router `to` delivered everything below `next` of this router's stream to it; whether
    /// that freed anything.
    pub(super) fn acked(&mut self, to: &str, next: u64, now: u64) -> bool {
        let Some(stream) = self.streams.get_mut(to) else { return false };
        let next = next.min(stream.next());
        if next <= stream.acked {
            return false;
        }
        self.bytes -= stream.pop(next - stream.acked);
        stream.progress = now;
        true
    }

    /// Router `to` asks for this router's stream again from `from`; returns how many events
    /// go again.
    pub(super) fn resend(&mut self, to: &str, from: u64, now: u64) -> u64 {
        let Some(stream) = self.streams.get_mut(to) else { return 0 };
        let from = from.clamp(stream.acked, stream.next());
        if from >= stream.sent {
            return 0;
        }
        let again = stream.sent - from;
        stream.sent = from;
        stream.progress = now;
        again
    }

    /// Joined the switch (again): a stream for every router in `known`, each connected as `up`
    /// says. Everything unacknowledged goes again (the switch dropped whatever was in flight);
    /// returns how many events that is.
    pub(super) fn rejoin<'a>(
        &mut self,
        known: impl IntoIterator<Item = &'a Arc<str>>,
        up: impl Fn(&str) -> bool,
        now: u64,
    ) -> u64 {
        for id in known {
            self.streams.entry(id.clone()).or_insert_with(|| Stream::new(false, now));
        }
        self.streams
            .iter_mut()
            .map(|(id, stream)| {
                stream.up = up(id);
                stream.rewind(now)
            })
            .sum()
    }

    /// Router `id` is connected: its stream goes again from the first unacknowledged event;
    /// returns how many events that is.
    pub(super) fn up(&mut self, id: Arc<str>, now: u64) -> u64 {
        let stream = self.streams.entry(id).or_insert_with(|| Stream::new(true, now));
        stream.up = true;
        stream.rewind(now)
    }

    /// Router `id` is not connected: nothing goes to it until it is back.
    pub(super) fn down(&mut self, id: &str) {
        if let Some(stream) = self.streams.get_mut(id) {
            stream.up = false;
        }
    }

    /// The connection to the switch is gone: nothing can be sent until the next join.
    pub(super) fn disconnected(&mut self) {
        for stream in self.streams.values_mut() {
            stream.up = false;
        }
    }

    /// Events sent to router `id` and not acknowledged yet.
    pub(super) fn in_flight(&self, id: &str) -> u64 {
        self.streams.get(id).map_or(0, |s| s.sent.saturating_sub(s.acked))
    }

    /// Forgets router `id`: `None` if it had no stream, else how many of its events are lost.
    pub(super) fn remove(&mut self, id: &str) -> Option<u64> {
        let mut stream = self.streams.remove(id)?;
        let n = stream.entries.len() as u64;
        self.bytes -= stream.pop(n);
        Some(n)
    }

    /// Gives up the events older than the outage window, and sends again what a connected
    /// router left unacknowledged for [`RETRANSMIT_MS`].
    pub(super) fn expire(&mut self, now: u64) -> Expired {
        let mut expired = Expired::default();
        let mut freed = 0;
        for (id, stream) in &mut self.streams {
            let lost = stream
                .entries
                .iter()
                .take_while(|e| now.saturating_sub(e.at) > self.outage_ms)
                .count() as u64;
            freed += stream.pop(lost);
            if lost > 0 {
                expired.lost.push((id.clone(), lost));
            }
            if stream.up
                && stream.sent > stream.acked
                && now.saturating_sub(stream.progress) > RETRANSMIT_MS
            {
                expired.resent += stream.rewind(now);
            }
        }
        self.bytes -= freed;
        expired
    }

    /// Owes router `from` the acknowledgement of everything below `next` of its stream (of
    /// its run `epoch`): it goes with the next data, or on its own after [`ACK_DELAY_MS`].
    #[cfg(test)]
    pub(super) fn ack(&mut self, from: &Arc<str>, epoch: u64, next: u64, now: u64) {
        merge(&mut self.acks, from, epoch, next);
        self.acks_due.get_or_insert(now + ACK_DELAY_MS);
    }

    /// Owes router `from` the acknowledgement of what `progress` says was handled: read when
    /// it is sent (so the handled prefix may move many times between two writes for the cost
    /// of one acknowledgement).
    pub(super) fn progressed(&mut self, from: Arc<str>, progress: Arc<Progress>, now: u64) {
        self.progressed.push((from, progress));
        self.acks_due.get_or_insert(now + ACK_DELAY_MS);
    }

    /// Owes router `from` a request to send its stream (of its run `epoch`) again from `seq`.
    pub(super) fn ask_resend(&mut self, from: Arc<str>, epoch: u64, seq: u64) {
        self.resends.push((from, epoch, seq));
    }

    /// Events kept for connected routers.
    pub(super) fn unacknowledged(&self) -> usize {
        self.streams.values().filter(|s| s.up).map(|s| s.entries.len()).sum()
    }

    /// Events kept.
    pub(super) fn buffered(&self) -> u64 {
        self.streams.values().map(|s| s.entries.len() as u64).sum()
    }

    /// Frames everything that can go now into `buf`: resend requests, then data of each
    /// stream whose destination is up, within its in-flight window (this router's run is
    /// `epoch`), then acknowledgements: they ride along with data, or go alone once due or
    /// when this router is `leaving`. Returns when the acknowledgements left are due.
    pub(super) fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        epoch: u64,
        now: u64,
        leaving: bool,
    ) -> Result<Option<u64>, FrameError> {
        for (to, from_epoch, from) in std::mem::take(&mut self.resends) {
            push_frame(buf, &ToSwitch::Resend { to: &to, epoch: from_epoch, from })?;
        }
        for (to, stream) in &mut self.streams {
            while stream.up
                && buf.len() < WRITE_BATCH
                && stream.sent < stream.next()
                && stream.sent - stream.acked < self.window
            {
                let start = usize::try_from(stream.sent - stream.acked).unwrap_or(usize::MAX);
                let room =
                    usize::try_from(stream.acked + self.window - stream.sent).unwrap_or(usize::MAX);
                let most = (stream.entries.len() - start).min(room).min(BATCH_ITEMS);
                // Large items (tunnel chunks) make smaller frames: one write batch at most,
                // and never less than one item.
                let begin = stream.begin(start);
                let mut n = 0;
                for entry in stream.entries.range(start..start + most) {
                    let total = usize::try_from(entry.end - begin).unwrap_or(usize::MAX);
                    if n > 0 && total > WRITE_BATCH {
                        break;
                    }
                    n += 1;
                }
                let s = &*stream;
                let items = (start..start + n).map(|i| s.item(i));
                let numbers = (epoch, stream.acked, stream.sent);
                push_data(buf, to, numbers, n as u32, items)?;
                stream.sent += n as u64;
            }
        }
        for (from, progress) in self.progressed.drain(..) {
            let (epoch, next) = progress.take_ack();
            merge(&mut self.acks, &from, epoch, next);
        }
        let due = self.acks_due.is_some_and(|due| now >= due);
        if !self.acks.is_empty() && (!buf.is_empty() || due || leaving) {
            for (to, (epoch, next)) in self.acks.drain() {
                push_frame(buf, &ToSwitch::Ack { to: &to, epoch, next })?;
            }
            self.acks_due = None;
        }
        Ok(self.acks_due)
    }
}

#[cfg(test)]
mod tests;
