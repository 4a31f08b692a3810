//! A manager's mailbox: a bounded queue of [`Envelope`]s, and the disciplines of taking them
//! out.
//!
//! # The queue
//!
//! An unbounded tokio channel carries the envelopes; one atomic word counts the slots taken
//! (queued or reserved) and holds the closed flag, so that a send costs one compare-and-swap
//! beside the channel's push, and taking an envelope out one decrement. Senders that find the
//! mailbox full wait on a [`Notify`] that the receiver pokes only when somebody waits, and only
//! once a quarter of the mailbox is free again: a sender that outpaces its receiver is woken
//! once per batch of room rather than once per envelope, and the receiver still has three
//! quarters of a mailbox to work through meanwhile. (tokio's bounded channel releases each slot
//! under a mutex, and hands each freed slot to a waiting sender.)
//!
//! The channel is created when the first envelope is sent ([`MailboxTx`]): a manager that was
//! never sent anything holds no channel (its first block alone is 32 envelope slots, 2.5 KiB).
//!
//! # The disciplines
//!
//! A FIFO manager takes envelopes in the order they came. A `#[manager(queue = priority)]`
//! manager first moves what has arrived into per-lane FIFO buffers (at most its capacity), then
//! serves the lowest non-empty lane: lower lanes first, strictly first-in first-out within a
//! lane.

use crate::envelope::Envelope;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::SendError, error::TrySendError};

/// The closed flag in [`Chan::state`]; the bits below count the taken slots.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// What the two halves of a mailbox share.
struct Chan {
    tx: OnceLock<mpsc::UnboundedSender<Envelope>>,
    /// The receiving half, from the channel's creation until the manager's task takes it.
    rx: Mutex<Option<mpsc::UnboundedReceiver<Envelope>>>,
    /// Told when the channel is created.
    created: Notify,
    capacity: usize,
    /// Slots taken (queued or reserved), and [`CLOSED`].
    state: AtomicUsize,
    /// Senders waiting for room.
    waiting: AtomicUsize,
    /// Poked when a slot is freed while somebody waits, and at closing.
    room: Notify,
    /// Envelopes that got in after the manager's task drained the mailbox for the last time
    /// (through a reservation, the router stopping at that instant): dropped unhandled,
    /// counted with the manager's dropped events.
    lost: AtomicU64,
}

impl Chan {
    #[cold]
    #[inline(never)]
    fn create(&self) -> &mpsc::UnboundedSender<Envelope> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            *self.rx.lock().unwrap_or_else(PoisonError::into_inner) = Some(rx);
            self.created.notify_one();
            tx
        })
    }

    #[inline]
    fn sender(&self) -> &mpsc::UnboundedSender<Envelope> {
        match self.tx.get() {
            Some(tx) => tx,
            None => self.create(),
        }
    }

    fn take_rx(&self) -> Option<mpsc::UnboundedReceiver<Envelope>> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Takes a slot.
    #[inline]
    fn reserve(&self) -> Result<(), TrySendError<()>> {
        let mut state = self.state.load(Ordering::SeqCst);
        loop {
            if state & CLOSED != 0 {
                return Err(TrySendError::Closed(()));
            }
            if state >= self.capacity {
                return Err(TrySendError::Full(()));
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => state = now,
            }
        }
    }

    /// Frees a slot; once a quarter of the mailbox is free, lets a waiting sender in.
    #[inline]
    fn release(&self) {
        let taken = (self.state.fetch_sub(1, Ordering::SeqCst) - 1) & !CLOSED;
        let resume_at = self.capacity - (self.capacity / 4).max(1);
        if taken <= resume_at && self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_one();
        }
    }

    /// Puts `envelope` into its reserved slot; gives it back when the receiver is gone.
    #[inline]
    fn push(&self, envelope: Envelope) -> Result<(), Envelope> {
        self.sender().send(envelope).map_err(|mpsc::error::SendError(envelope)| {
            self.release();
            envelope
        })
    }

    /// Refuses new envelopes from now on and wakes the senders waiting for room.
    fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::SeqCst);
        self.room.notify_waiters();
        self.created.notify_one();
    }

    fn taken(&self) -> usize {
        self.state.load(Ordering::Relaxed) & !CLOSED
    }

    /// Counts `n` envelopes that got in after the manager's task was done with its mailbox.
    #[cold]
    fn lose(&self, n: u64) {
        let lost = self.lost.fetch_add(n, Ordering::Relaxed) + n;
        tracing::warn!(lost, "events reached a mailbox after its manager stopped: dropped");
    }
}

/// The sending half of a manager's mailbox, held by every route to it.
#[derive(Clone)]
pub(crate) struct MailboxTx(Arc<Chan>);

/// The receiving half of a manager's mailbox, for its task. Dropped, it closes the mailbox.
#[doc(hidden)]
pub struct MailboxRx(Arc<Chan>);

impl Drop for MailboxRx {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A mailbox of `capacity` envelopes, its channel not created yet.
pub(crate) fn channel(capacity: usize) -> (MailboxTx, MailboxRx) {
    assert!(capacity < CLOSED, "mailbox capacity too large");
    let chan = Arc::new(Chan {
        tx: OnceLock::new(),
        rx: Mutex::new(None),
        created: Notify::new(),
        capacity,
        state: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
        room: Notify::new(),
        lost: AtomicU64::new(0),
    });
    (MailboxTx(chan.clone()), MailboxRx(chan))
}

/// A slot reserved in a mailbox ([`MailboxTx::try_reserve`]): [`send`](Self::send) fills
/// it; dropped unused, it frees it.
pub(crate) struct Permit<'a>(&'a Chan);

impl Permit<'_> {
    /// Puts `envelope` into the reserved slot. Should the manager's task be gone already (the
    /// router stopping at this instant), the envelope is dropped and counted as lost.
    pub(crate) fn send(self, envelope: Envelope) {
        let chan = self.0;
        std::mem::forget(self);
        if chan.push(envelope).is_err() {
            chan.lose(1);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Keeps [`Chan::waiting`] up while a sender waits (also when its future is dropped).
struct Waiting<'a>(&'a Chan);

impl<'a> Waiting<'a> {
    fn enter(chan: &'a Chan) -> Self {
        chan.waiting.fetch_add(1, Ordering::SeqCst);
        Self(chan)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MailboxTx {
    /// Queues `envelope` if there is room now.
    #[inline]
    pub(crate) fn try_send(&self, envelope: Envelope) -> Result<(), TrySendError<Envelope>> {
        match self.0.reserve() {
            Ok(()) => self.0.push(envelope).map_err(TrySendError::Closed),
            Err(TrySendError::Full(())) => Err(TrySendError::Full(envelope)),
            Err(TrySendError::Closed(())) => Err(TrySendError::Closed(envelope)),
        }
    }

    /// Queues `envelope`, waiting for room while the mailbox is full; fails once the mailbox
    /// is closed.
    pub(crate) async fn send(&self, envelope: Envelope) -> Result<(), SendError<Envelope>> {
        let mut envelope = match self.try_send(envelope) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(envelope)) => return Err(SendError(envelope)),
            Err(TrySendError::Full(envelope)) => envelope,
        };
        let _waiting = Waiting::enter(&self.0);
        loop {
            let room = self.0.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            // Looked at again after registering: a slot freed before that is seen here, one
            // freed after it wakes `room`.
            envelope = match self.try_send(envelope) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(envelope)) => return Err(SendError(envelope)),
                Err(TrySendError::Full(envelope)) => envelope,
            };
            room.await;
        }
    }

    /// Reserves a slot, to fill later without waiting.
    #[inline]
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_>, TrySendError<()>> {
        self.0.reserve()?;
        // Created now, so that filling the slot cannot fail for want of a channel.
        self.0.sender();
        Ok(Permit(&self.0))
    }

    /// Free slots.
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity.saturating_sub(self.0.taken())
    }

    /// The mailbox's capacity.
    pub(crate) fn max_capacity(&self) -> usize {
        self.0.capacity
    }

    /// Events dropped because they reached the mailbox after its manager had stopped.
    pub(crate) fn lost(&self) -> u64 {
        self.0.lost.load(Ordering::Relaxed)
    }
}

/// Where a manager's task gets its next envelope.
pub(crate) struct Mailbox {
    chan: MailboxRx,
    /// `None` until the first envelope was sent (no channel yet).
    rx: Option<mpsc::UnboundedReceiver<Envelope>>,
    /// `Some` for a priority manager.
    lanes: Option<Lanes>,
}

impl Mailbox {
    pub(crate) fn new(chan: MailboxRx, priority: bool) -> Self {
        let lanes = priority.then(|| Lanes::new(chan.0.capacity));
        Self { chan, rx: None, lanes }
    }

    fn closed(&self) -> bool {
        self.chan.0.state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// Refuses new envelopes (their senders get an error); the ones already queued are still
    /// returned by [`next`](Self::next), then `None`.
    pub(crate) fn close(&mut self) {
        self.chan.0.close();
    }

    /// The next envelope already in the channel.
    fn try_recv(&mut self) -> Option<Envelope> {
        if self.rx.is_none() {
            self.rx = self.chan.0.take_rx();
        }
        let envelope = self.rx.as_mut()?.try_recv().ok()?;
        self.chan.0.release();
        Some(envelope)
    }

    /// Closes the mailbox and drops what it still holds; returns how many events that was
    /// (stop envelopes do not count).
    pub(crate) fn discard(&mut self) -> usize {
        self.close();
        let mut dropped = 0;
        let mut count = |envelope: Envelope| {
            dropped += usize::from(!envelope.is_stop());
        };
        while let Some(envelope) = self.lanes.as_mut().and_then(Lanes::pop) {
            count(envelope);
        }
        while let Some(envelope) = self.try_recv() {
            count(envelope);
        }
        dropped
    }

    /// Waits until the channel exists: the first envelope was sent, or the mailbox closed.
    #[cold]
    async fn open(&mut self) {
        while self.rx.is_none() {
            self.rx = self.chan.0.take_rx();
            if self.rx.is_some() || self.closed() {
                return;
            }
            self.chan.0.created.notified().await;
        }
    }

    /// The next envelope, or `None` when the mailbox is closed and nothing is left.
    pub(crate) async fn next(&mut self) -> Option<Envelope> {
        if self.rx.is_none() {
            self.open().await;
        }
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        let closed = self.closed();
        let Some(rx) = &mut self.rx else { return Poll::Ready(None) };
        if let Some(lanes) = &mut self.lanes {
            while !lanes.is_full() {
                match rx.try_recv() {
                    Ok(envelope) => {
                        self.chan.0.release();
                        lanes.push(envelope);
                    }
                    Err(_) => break,
                }
            }
            if let Some(envelope) = lanes.pop() {
                return Poll::Ready(Some(envelope));
            }
        }
        let envelope = if closed {
            // Whatever a reservation fills after this is counted by `discard` or as lost.
            rx.try_recv().ok()
        } else {
            std::task::ready!(rx.poll_recv(cx))
        };
        if envelope.is_some() {
            self.chan.0.release();
        }
        Poll::Ready(envelope)
    }
}

impl Drop for Mailbox {
    /// Refuses what a reservation would still put in, and counts what got in after the last
    /// [`discard`](Mailbox::discard) as lost.
    fn drop(&mut self) {
        self.chan.0.close();
        let Some(mut rx) = self.rx.take().or_else(|| self.chan.0.take_rx()) else { return };
        rx.close();
        let mut lost = 0;
        while let Ok(envelope) = rx.try_recv() {
            lost += u64::from(!envelope.is_stop());
        }
        if lost > 0 {
            self.chan.0.lose(lost);
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
mod tests;
