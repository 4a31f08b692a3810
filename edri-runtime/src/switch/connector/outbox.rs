//! Events kept for other routers until they acknowledge them, and what goes to the switch next.
//!
//! Each destination router has a stream numbered from 0: entry `i` of a stream has sequence
//! `acked + i`. An event stays until its destination acknowledges it (acknowledgements are
//! cumulative) or until it is older than the outage window: then it is given up and counted
//! as lost. After a reconnection, a resend request or a silence of [`RETRANSMIT_MS`], a stream
//! is sent again from its first unacknowledged event. At most `window` events of one stream are
//! in flight.
//!
//! No I/O and no clock here: `now` is milliseconds on the connector's clock, passed in.

use crate::framing::{FrameError, push_frame};
use crate::router::FastMap;
use crate::switch::WRITE_BATCH;
use crate::switch::frame::{ToSwitch, push_data};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// An acknowledgement waits at most this long (ms) for data to ride along with.
const ACK_DELAY_MS: u64 = 1;
/// Items in one `Data` frame at most.
const BATCH_ITEMS: usize = 1024;
/// Bytes a kept event costs beyond its own (bookkeeping).
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
    /// Whether the destination is connected to the switch.
    up: bool,
    /// When the stream last made progress (ms), for retransmission.
    progress: u64,
}

struct Entry {
    item: Bytes,
    /// When it was queued (ms).
    at: u64,
}

impl Stream {
    fn new(up: bool, now: u64) -> Self {
        Self { acked: 0, sent: 0, entries: VecDeque::new(), up, progress: now }
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
        let mut freed = 0;
        for _ in 0..n {
            if let Some(e) = self.entries.pop_front() {
                freed += cost(&e.item);
            }
            self.acked += 1;
        }
        self.sent = self.sent.max(self.acked);
        freed
    }
}

/// What one kept item costs the buffer.
fn cost(item: &[u8]) -> usize {
    item.len() + ENTRY_OVERHEAD
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
            acks_due: None,
            resends: Vec::new(),
        }
    }

    /// Keeps `item` for each router in `to`. `None` when the buffer is full (unless `force`:
    /// responses must not wait behind the events they answer); otherwise whether any of them
    /// is connected, that is whether there is something to send now.
    pub(super) fn push(
        &mut self,
        to: &[Arc<str>],
        item: &Bytes,
        force: bool,
        now: u64,
    ) -> Option<bool> {
        let total = cost(item) * to.len();
        if !force && self.bytes > 0 && self.bytes + total > self.buffer {
            return None;
        }
        let mut sendable = false;
        for id in to {
            let stream = match self.streams.get_mut(id) {
                Some(s) => s,
                None => self.streams.entry(id.clone()).or_insert_with(|| Stream::new(false, now)),
            };
            stream.entries.push_back(Entry { item: item.clone(), at: now });
            sendable |= stream.up;
        }
        self.bytes += total;
        Some(sendable)
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
        let stream = self.streams.remove(id)?;
        self.bytes -= stream.entries.iter().map(|e| cost(&e.item)).sum::<usize>();
        Some(stream.entries.len() as u64)
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
    pub(super) fn ack(&mut self, from: &Arc<str>, epoch: u64, next: u64, now: u64) {
        // Handlers finish on several threads: never let an older acknowledgement replace a
        // newer one of the same run.
        let ack = self.acks.entry(from.clone()).or_insert((epoch, next));
        *ack = if ack.0 == epoch { (epoch, ack.1.max(next)) } else { (epoch, next) };
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
                let (mut n, mut total) = (0, 0);
                for entry in stream.entries.range(start..start + most) {
                    if n > 0 && total + entry.item.len() > WRITE_BATCH {
                        break;
                    }
                    total += entry.item.len();
                    n += 1;
                }
                let items = stream.entries.range(start..start + n).map(|e| &e.item[..]);
                let (base, first) = (stream.acked, stream.sent);
                push_data(buf, to, epoch, base, first, n as u32, items, total)?;
                stream.sent += n as u64;
            }
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
mod tests {
    use super::*;
    use crate::framing::decode;

    const EPOCH: u64 = 77;
    const OUTAGE: u64 = 60_000;

    /// A frame as the switch would read it: data as (to, base, first, item bytes).
    #[derive(Debug, PartialEq, Eq)]
    enum Sent {
        Data(&'static str, u64, u64, Vec<u8>),
        Ack(&'static str, u64, u64),
        Resend(&'static str, u64, u64),
    }

    fn name(id: &str) -> &'static str {
        ["a", "b", "c"].into_iter().find(|n| *n == id).expect("a test router")
    }

    fn id(name: &str) -> Arc<str> {
        name.into()
    }

    /// An item of one byte, so that a `Data` frame's items spell their numbers.
    fn item(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    fn outbox(window: u64) -> Outbox {
        Outbox::new(1 << 20, window, OUTAGE)
    }

    fn push(out: &mut Outbox, to: &str, items: std::ops::Range<u8>, now: u64) {
        for n in items {
            assert!(out.push(&[id(to)], &item(n), false, now).is_some());
        }
    }

    /// What `fill` frames at `now`, decoded.
    fn fill(out: &mut Outbox, now: u64) -> Vec<Sent> {
        let mut buf = Vec::new();
        out.fill(&mut buf, EPOCH, now, false).unwrap();
        let mut frames = Vec::new();
        let mut rest = &buf[..];
        while let Some((prefix, after)) = rest.split_first_chunk::<4>() {
            let (body, after) = after.split_at(u32::from_le_bytes(*prefix) as usize);
            frames.push(match decode::<ToSwitch<'_>>(body).unwrap() {
                ToSwitch::Data { to, epoch, base, first, count, items } => {
                    assert_eq!((epoch, count as usize), (EPOCH, items.len()));
                    Sent::Data(name(to), base, first, items.to_vec())
                }
                ToSwitch::Ack { to, epoch, next } => Sent::Ack(name(to), epoch, next),
                ToSwitch::Resend { to, epoch, from } => Sent::Resend(name(to), epoch, from),
                other => panic!("unexpected {other:?}"),
            });
            rest = after;
        }
        frames
    }

    /// An outbox that sent events `0..n` to the connected router `b` at time 0.
    fn sent_to_b(n: u8) -> Outbox {
        let mut out = outbox(16);
        out.up(id("b"), 0);
        push(&mut out, "b", 0..n, 0);
        assert_eq!(fill(&mut out, 0), [Sent::Data("b", 0, 0, (0..n).collect())]);
        out
    }

    #[test]
    fn sends_in_order_within_the_window_and_frees_what_is_acknowledged() {
        let mut out = outbox(2);
        out.up(id("b"), 0);
        push(&mut out, "b", 0..5, 0);
        assert_eq!(fill(&mut out, 0), [Sent::Data("b", 0, 0, vec![0, 1])]);
        assert_eq!(fill(&mut out, 0), [], "the window is full");
        assert!(out.acked("b", 1, 5));
        assert_eq!(fill(&mut out, 5), [Sent::Data("b", 1, 2, vec![2])]);
        assert!(!out.acked("b", 1, 6), "an old acknowledgement frees nothing");
        assert!(out.acked("b", 3, 6));
        assert_eq!(fill(&mut out, 6), [Sent::Data("b", 3, 3, vec![3, 4])]);
        // An acknowledgement beyond what was kept stops at the end of the stream.
        assert!(out.acked("b", 99, 7));
        assert_eq!((out.buffered(), out.bytes), (0, 0));
        push(&mut out, "b", 5..6, 8);
        assert_eq!(fill(&mut out, 8), [Sent::Data("b", 5, 5, vec![5])]);
    }

    #[test]
    fn events_for_a_router_that_is_away_wait_for_it() {
        let mut out = outbox(16);
        assert_eq!(out.push(&[id("b")], &item(0), false, 0), Some(false));
        out.up(id("c"), 0);
        assert_eq!(out.push(&[id("b"), id("c")], &item(1), false, 0), Some(true));
        assert_eq!(fill(&mut out, 0), [Sent::Data("c", 0, 0, vec![1])]);
        assert_eq!(out.unacknowledged(), 1);
        assert_eq!(out.up(id("b"), 1), 0, "nothing was in flight");
        assert_eq!(fill(&mut out, 1), [Sent::Data("b", 0, 0, vec![0, 1])]);
        out.down("b");
        push(&mut out, "b", 2..3, 2);
        assert_eq!(fill(&mut out, 2), []);
    }

    #[test]
    fn resends_everything_unacknowledged_after_a_reconnection() {
        let mut out = sent_to_b(4);
        assert!(out.acked("b", 2, 1));
        out.disconnected();
        push(&mut out, "b", 4..5, 2);
        assert_eq!(fill(&mut out, 2), []);
        assert_eq!(out.unacknowledged(), 0, "nothing is kept for a connected router");
        let known = [id("b"), id("c")];
        assert_eq!(out.rejoin(&known, |id| id == "b", 3), 2, "2 and 3 were in flight");
        assert_eq!(out.in_flight("b"), 0);
        assert_eq!(fill(&mut out, 3), [Sent::Data("b", 2, 2, vec![2, 3, 4])]);
        assert_eq!(out.in_flight("b"), 3);
        assert_eq!(out.in_flight("c"), 0);
    }

    #[test]
    fn a_resend_request_goes_back_to_the_gap_only() {
        let mut out = sent_to_b(5);
        assert!(out.acked("b", 1, 0));
        assert_eq!(out.resend("b", 3, 1), 2);
        assert_eq!(fill(&mut out, 1), [Sent::Data("b", 1, 3, vec![3, 4])]);
        // Below what was acknowledged: from the first unacknowledged one.
        assert_eq!(out.resend("b", 0, 2), 4);
        assert_eq!(fill(&mut out, 2), [Sent::Data("b", 1, 1, vec![1, 2, 3, 4])]);
        assert_eq!(out.resend("b", 9, 3), 0, "beyond the stream");
        assert_eq!(out.resend("c", 0, 3), 0, "an unknown router");
        assert_eq!(fill(&mut out, 3), []);
    }

    #[test]
    fn what_stays_unacknowledged_beyond_the_outage_window_is_lost_and_counted() {
        let mut out = outbox(16);
        push(&mut out, "b", 0..2, 0);
        push(&mut out, "b", 2..3, 30_000);
        push(&mut out, "c", 3..4, 1_000);
        let kept = out.bytes;
        assert_eq!(out.expire(OUTAGE), Expired::default(), "not beyond the window yet");
        let expired = out.expire(OUTAGE + 1);
        assert_eq!(expired, Expired { lost: vec![(id("b"), 2)], resent: 0 });
        assert_eq!(out.bytes, kept - 2 * cost(&[0]));
        assert_eq!(out.buffered(), 2);
        // The receiver learns from `base` that 0 and 1 were given up.
        out.up(id("b"), OUTAGE + 2);
        assert_eq!(fill(&mut out, OUTAGE + 2), [Sent::Data("b", 2, 2, vec![2])]);
        let mut expired = out.expire(OUTAGE + 30_001);
        expired.lost.sort();
        assert_eq!(expired, Expired { lost: vec![(id("b"), 1), (id("c"), 1)], resent: 0 });
        assert_eq!((out.buffered(), out.bytes), (0, 0));
    }

    #[test]
    fn in_flight_events_without_progress_are_sent_again() {
        let mut out = sent_to_b(2);
        assert_eq!(out.expire(RETRANSMIT_MS), Expired::default());
        assert!(out.acked("b", 1, 1_000));
        assert_eq!(out.expire(RETRANSMIT_MS + 1), Expired::default(), "progress at 1 s");
        assert_eq!(out.expire(1_000 + RETRANSMIT_MS + 1).resent, 1);
        assert_eq!(fill(&mut out, 4_002), [Sent::Data("b", 1, 1, vec![1])]);
    }

    #[test]
    fn acknowledgements_keep_the_newest_of_a_run_and_ride_along_with_data() {
        let mut out = outbox(16);
        out.ack(&id("a"), 5, 10, 100);
        out.ack(&id("a"), 5, 7, 100);
        let mut buf = Vec::new();
        assert_eq!(out.fill(&mut buf, EPOCH, 100, false).unwrap(), Some(100 + ACK_DELAY_MS));
        assert!(buf.is_empty(), "waits for data to ride along with");
        assert_eq!(fill(&mut out, 101), [Sent::Ack("a", 5, 10)]);
        // A new run of the origin replaces the old one's acknowledgement, even lower.
        out.ack(&id("a"), 5, 12, 200);
        out.ack(&id("a"), 6, 2, 200);
        out.up(id("b"), 200);
        push(&mut out, "b", 0..1, 200);
        out.ask_resend(id("c"), 9, 4);
        let sent = fill(&mut out, 200);
        assert_eq!(
            sent,
            [Sent::Resend("c", 9, 4), Sent::Data("b", 0, 0, vec![0]), Sent::Ack("a", 6, 2)]
        );
        // Leaving: the acknowledgements go at once.
        out.ack(&id("a"), 6, 3, 300);
        buf.clear();
        assert_eq!(out.fill(&mut buf, EPOCH, 300, true).unwrap(), None);
        assert!(!buf.is_empty());
    }

    #[test]
    fn a_full_buffer_refuses_unless_forced() {
        let mut out = Outbox::new(2 * cost(&[0]), 16, OUTAGE);
        assert_eq!(out.push(&[id("b")], &item(0), false, 0), Some(false));
        assert_eq!(out.push(&[id("b")], &item(1), false, 0), Some(false));
        assert_eq!(out.push(&[id("b")], &item(2), false, 0), None);
        assert_eq!(out.push(&[id("b"), id("c")], &item(2), true, 0), Some(false));
        assert_eq!(out.bytes, 4 * cost(&[0]));
        out.up(id("b"), 0);
        fill(&mut out, 0);
        assert!(out.acked("b", 3, 1));
        assert_eq!(out.bytes, cost(&[0]), "c's copy is left");
        assert_eq!(out.push(&[id("b")], &item(3), false, 1), Some(true));
        // An empty outbox takes even an item above the whole buffer.
        let mut out = Outbox::new(1, 16, OUTAGE);
        assert_eq!(out.push(&[id("b")], &item(0), false, 0), Some(false));
    }

    #[test]
    fn a_router_forgotten_loses_what_it_did_not_acknowledge() {
        let mut out = sent_to_b(3);
        assert!(out.acked("b", 1, 0));
        assert_eq!(out.in_flight("b"), 2);
        assert_eq!(out.remove("b"), Some(2));
        assert_eq!(out.remove("b"), None);
        assert_eq!((out.buffered(), out.bytes), (0, 0));
    }
}
