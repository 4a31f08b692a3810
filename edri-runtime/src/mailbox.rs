//! The mailbox disciplines. A FIFO manager takes envelopes straight from its channel. A
//! `#[manager(queue = priority)]` manager first moves what has arrived into per-lane FIFO
//! buffers (at most its capacity), then serves the lowest non-empty lane: lower lanes first,
//! strictly first-in first-out within a lane.

use crate::envelope::{Envelope, Payload};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::mpsc;

/// Where a manager's task gets its next envelope.
pub(crate) enum Mailbox {
    Fifo(mpsc::Receiver<Envelope>),
    Priority { channel: mpsc::Receiver<Envelope>, lanes: Lanes },
}

impl Mailbox {
    pub(crate) fn new(channel: mpsc::Receiver<Envelope>, priority: bool) -> Self {
        if priority {
            let cap = channel.max_capacity();
            Self::Priority { channel, lanes: Lanes::new(cap) }
        } else {
            Self::Fifo(channel)
        }
    }

    /// Refuses new envelopes (their senders get an error); the ones already queued are still
    /// returned by [`next`](Self::next), then `None`.
    pub(crate) fn close(&mut self) {
        match self {
            Self::Fifo(channel) | Self::Priority { channel, .. } => channel.close(),
        }
    }

    /// Closes the mailbox and drops what it still holds; returns how many events that was
    /// (stop envelopes do not count).
    pub(crate) fn discard(&mut self) -> usize {
        self.close();
        let mut dropped = 0;
        let mut count = |envelope: Envelope| {
            dropped += usize::from(!matches!(envelope.payload, Payload::Stop));
        };
        match self {
            Self::Fifo(channel) => {
                while let Ok(envelope) = channel.try_recv() {
                    count(envelope);
                }
            }
            Self::Priority { channel, lanes } => {
                while let Some(envelope) = lanes.pop() {
                    count(envelope);
                }
                while let Ok(envelope) = channel.try_recv() {
                    count(envelope);
                }
            }
        }
        dropped
    }

    /// The next envelope, or `None` when every sender is gone and nothing is left.
    pub(crate) async fn next(&mut self) -> Option<Envelope> {
        match self {
            Self::Fifo(channel) => channel.recv().await,
            Self::Priority { channel, lanes } => {
                while !lanes.is_full() {
                    match channel.try_recv() {
                        Ok(envelope) => lanes.push(envelope),
                        Err(_) => break,
                    }
                }
                match lanes.pop() {
                    Some(envelope) => Some(envelope),
                    None => channel.recv().await,
                }
            }
        }
    }
}

/// Per-priority FIFO buffers.
pub(crate) struct Lanes {
    lanes: BTreeMap<u8, VecDeque<Envelope>>,
    len: usize,
    cap: usize,
}

impl Lanes {
    pub(crate) fn new(cap: usize) -> Self {
        Self { lanes: BTreeMap::new(), len: 0, cap: cap.max(1) }
    }

    fn is_full(&self) -> bool {
        self.len >= self.cap
    }

    pub(crate) fn push(&mut self, envelope: Envelope) {
        self.lanes.entry(envelope.priority).or_default().push_back(envelope);
        self.len += 1;
    }

    /// The oldest envelope of the most urgent non-empty lane.
    pub(crate) fn pop(&mut self) -> Option<Envelope> {
        let mut lane = self.lanes.first_entry()?;
        let envelope = lane.get_mut().pop_front();
        if lane.get().is_empty() {
            lane.remove();
        }
        self.len -= usize::from(envelope.is_some());
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_serve_lower_first_and_fifo_within() {
        let mut lanes = Lanes::new(100);
        let order = [(3, 0), (1, 1), (3, 2), (0, 3), (1, 4), (0, 5)];
        for (priority, handler) in order {
            let mut e = Envelope::stop();
            e.priority = priority;
            e.handler = handler;
            lanes.push(e);
        }
        let out: Vec<(u8, u16)> =
            std::iter::from_fn(|| lanes.pop()).map(|e| (e.priority, e.handler)).collect();
        assert_eq!(out, [(0, 3), (0, 5), (1, 1), (1, 4), (3, 0), (3, 2)]);
        assert!(lanes.pop().is_none());
    }

    #[tokio::test]
    async fn a_closed_mailbox_refuses_new_events_and_counts_what_it_drops() {
        for priority in [false, true] {
            let (tx, rx) = mpsc::channel(8);
            let mut mailbox = Mailbox::new(rx, priority);
            tx.send(Envelope::single(0, 0, 1u32)).await.unwrap();
            tx.send(Envelope::stop()).await.unwrap();
            tx.send(Envelope::single(0, 0, 2u32)).await.unwrap();
            mailbox.close();
            assert!(tx.try_send(Envelope::single(0, 0, 3u32)).is_err(), "closed");
            assert!(mailbox.next().await.is_some());
            assert_eq!(mailbox.discard(), 1, "one event left besides the stop envelope");
            assert!(mailbox.next().await.is_none());
        }
    }
}
