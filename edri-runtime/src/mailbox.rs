//! The mailbox disciplines. A FIFO manager takes envelopes straight from its channel. A
//! `#[manager(queue = priority)]` manager first moves what has arrived into per-lane FIFO
//! buffers (at most its capacity), then serves the lowest non-empty lane: lower lanes first,
//! strictly first-in first-out within a lane.
//!
//! A mailbox's channel is created when the first envelope is sent to it ([`MailboxTx`]): a
//! manager that was never sent anything holds no channel (the channel's first block alone is
//! 32 envelope slots, 2.5 KiB).

use crate::envelope::Envelope;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::mpsc;

/// A manager's bounded mailbox channel, created on first use.
struct Lazy {
    tx: OnceLock<mpsc::Sender<Envelope>>,
    /// The receiving half, from creation until the manager's task takes it.
    rx: Mutex<Option<mpsc::Receiver<Envelope>>>,
    /// Told when the channel is created.
    created: tokio::sync::Notify,
    capacity: usize,
}

impl Lazy {
    #[cold]
    #[inline(never)]
    fn create(&self) -> &mpsc::Sender<Envelope> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.capacity);
            *self.rx.lock().unwrap_or_else(PoisonError::into_inner) = Some(rx);
            self.created.notify_one();
            tx
        })
    }

    fn take_rx(&self) -> Option<mpsc::Receiver<Envelope>> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The sending half of a manager's mailbox, held by every route to it: derefs to the
/// channel's sender, creating the channel on first use.
#[derive(Clone)]
pub(crate) struct MailboxTx(Arc<Lazy>);

/// The receiving half of a manager's mailbox, for its task.
#[doc(hidden)]
pub struct MailboxRx(Arc<Lazy>);

/// A mailbox of `capacity` envelopes, its channel not created yet.
pub(crate) fn channel(capacity: usize) -> (MailboxTx, MailboxRx) {
    let lazy = Arc::new(Lazy {
        tx: OnceLock::new(),
        rx: Mutex::new(None),
        created: tokio::sync::Notify::new(),
        capacity,
    });
    (MailboxTx(lazy.clone()), MailboxRx(lazy))
}

impl MailboxTx {
    /// The channel's sender, the channel created if it was not yet.
    #[inline]
    pub(crate) fn sender(&self) -> &mpsc::Sender<Envelope> {
        match self.0.tx.get() {
            Some(tx) => tx,
            None => self.0.create(),
        }
    }

    /// Free slots (all of them before the channel exists).
    pub(crate) fn capacity(&self) -> usize {
        self.0.tx.get().map_or(self.0.capacity, mpsc::Sender::capacity)
    }

    /// The mailbox's capacity.
    pub(crate) fn max_capacity(&self) -> usize {
        self.0.capacity
    }
}

impl std::ops::Deref for MailboxTx {
    type Target = mpsc::Sender<Envelope>;
    #[inline]
    fn deref(&self) -> &Self::Target {
        self.sender()
    }
}

/// Where a manager's task gets its next envelope.
pub(crate) enum Mailbox {
    /// Never sent anything yet: no channel.
    Unopened {
        rx: MailboxRx,
        priority: bool,
    },
    Fifo(mpsc::Receiver<Envelope>),
    Priority {
        channel: mpsc::Receiver<Envelope>,
        lanes: Lanes,
    },
}

impl Mailbox {
    pub(crate) fn new(rx: MailboxRx, priority: bool) -> Self {
        Self::Unopened { rx, priority }
    }

    fn opened(channel: mpsc::Receiver<Envelope>, priority: bool) -> Self {
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
        if let Self::Unopened { rx, priority } = self {
            rx.0.create();
            let priority = *priority;
            match rx.0.take_rx() {
                Some(channel) => *self = Self::opened(channel, priority),
                None => return, // taken already: cannot happen, the task is the only taker
            }
        }
        match self {
            Self::Fifo(channel) | Self::Priority { channel, .. } => channel.close(),
            Self::Unopened { .. } => {}
        }
    }

    /// Closes the mailbox and drops what it still holds; returns how many events that was
    /// (stop envelopes do not count).
    pub(crate) fn discard(&mut self) -> usize {
        self.close();
        let mut dropped = 0;
        let mut count = |envelope: Envelope| {
            dropped += usize::from(!envelope.is_stop());
        };
        match self {
            Self::Unopened { .. } => {}
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
        while let Self::Unopened { rx, priority } = self {
            let channel = loop {
                if let Some(channel) = rx.0.take_rx() {
                    break channel;
                }
                rx.0.created.notified().await;
            };
            *self = Self::opened(channel, *priority);
        }
        match self {
            Self::Unopened { .. } => None,
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
            let (tx, rx) = channel(8);
            let mut mailbox = Mailbox::new(rx, priority);
            assert_eq!((tx.capacity(), tx.max_capacity()), (8, 8), "no channel yet");
            tx.send(Envelope::single(0, 0, 1u32)).await.unwrap();
            tx.send(Envelope::stop()).await.unwrap();
            tx.send(Envelope::single(0, 0, 2u32)).await.unwrap();
            mailbox.close();
            assert!(tx.try_send(Envelope::single(0, 0, 3u32)).is_err(), "closed");
            assert!(mailbox.next().await.is_some());
            assert_eq!(mailbox.discard(), 1, "one event left besides the stop envelope");
            assert!(mailbox.next().await.is_none());
        }
        // Never sent anything: closing creates the channel only to refuse senders.
        let (tx, rx) = channel(8);
        let mut mailbox = Mailbox::new(rx, false);
        assert_eq!(mailbox.discard(), 0);
        assert!(tx.try_send(Envelope::single(0, 0, 1u32)).is_err(), "closed");
    }
}
