//! Which events of another router's stream this router has handled.
//!
//! An event from another router is acknowledged only once every local handler it went to
//! returned (a request: once its response was queued). Handlers finish out of order (several
//! managers, thread and process modes), so the acknowledgement is the first event not handled
//! yet: everything below it is done. A router that crashes therefore loses nothing it had
//! accepted: what it had not finished is still unacknowledged and comes again to its next run.

use crate::envelope::Completion;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Asks for an acknowledgement of what the progress says ([`Progress::take_ack`] reads it
/// when it is sent). Called once until then, however often the handled prefix moves.
pub(super) type AckFn = Box<dyn Fn(&Arc<Progress>) + Send + Sync>;

/// The handled prefix of one origin's stream.
pub(super) struct Progress {
    state: Mutex<State>,
    ack: AckFn,
    /// An acknowledgement was asked for and not taken yet.
    pending: AtomicBool,
}

struct State {
    /// The origin's run.
    epoch: u64,
    /// The first event not handled yet; everything below was.
    base: u64,
    /// Events `base..base + done.len()` were accepted; `true` once handled.
    done: VecDeque<bool>,
}

impl Progress {
    pub(super) fn new(ack: AckFn) -> Arc<Self> {
        let state = State { epoch: 0, base: 0, done: VecDeque::new() };
        Arc::new(Self { state: Mutex::new(state), ack, pending: AtomicBool::new(false) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new run of the origin: its stream starts at `base`; tokens of the old run no longer
    /// count.
    pub(super) fn restart(&self, epoch: u64, base: u64) {
        let mut state = self.state();
        state.epoch = epoch;
        state.base = base;
        state.done.clear();
    }

    /// Events `first..first + n` were accepted, in order, and are being handled. Events
    /// between the last accepted one and `first` were given up by the sender: they count as
    /// done.
    pub(super) fn accept(&self, first: u64, n: u64) {
        let mut state = self.state();
        let end = state.base + state.done.len() as u64;
        for _ in end..first {
            state.done.push_back(true);
        }
        for _ in 0..n {
            state.done.push_back(false);
        }
        state.advance();
    }

    /// Everything below this was handled.
    #[cfg(test)]
    pub(super) fn handled(&self) -> u64 {
        self.state().base
    }

    /// The token of accepted event `seq` of the origin's run `epoch`: dropped, the event counts as handled (unless it was
    /// abandoned).
    pub(super) fn token(self: &Arc<Self>, epoch: u64, seq: u64) -> Delivery {
        Delivery { progress: self.clone(), epoch, seq, abandoned: AtomicBool::new(false) }
    }

    /// The acknowledgement to send now: `(epoch of the origin's run, next sequence)`. The
    /// next move of the handled prefix asks for another one.
    pub(super) fn take_ack(&self) -> (u64, u64) {
        self.pending.store(false, Ordering::Release);
        let state = self.state();
        (state.epoch, state.base)
    }

    fn finish(self: &Arc<Self>, epoch: u64, seq: u64) {
        let mut state = self.state();
        if epoch != state.epoch || seq < state.base {
            return;
        }
        let Ok(i) = usize::try_from(seq - state.base) else { return };
        let Some(slot) = state.done.get_mut(i) else { return };
        *slot = true;
        if i == 0 && state.advance() {
            drop(state);
            if !self.pending.swap(true, Ordering::AcqRel) {
                (self.ack)(self);
            }
        }
    }
}

impl State {
    /// Moves `base` past the handled events at the front; whether it moved.
    fn advance(&mut self) -> bool {
        let before = self.base;
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
        self.base != before
    }
}

/// One accepted event of another router: handled once this is dropped, unless abandoned.
pub(super) struct Delivery {
    progress: Arc<Progress>,
    epoch: u64,
    seq: u64,
    abandoned: AtomicBool,
}

impl Completion for Delivery {
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.abandoned.load(Ordering::Acquire) {
            self.progress.finish(self.epoch, self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Acks = Arc<Mutex<Vec<(u64, u64)>>>;

    fn recording() -> (Arc<Progress>, Acks) {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let sink = acks.clone();
        // A writer that sends each acknowledgement at once.
        let progress = Progress::new(Box::new(move |progress| {
            sink.lock().unwrap().push(progress.take_ack());
        }));
        (progress, acks)
    }

    #[test]
    fn acknowledges_the_handled_prefix_only() {
        let (progress, acks) = recording();
        progress.restart(7, 10);
        progress.accept(10, 4);
        let tokens: Vec<Delivery> = (10..14).map(|seq| progress.token(7, seq)).collect();
        let mut tokens = tokens.into_iter().map(Some).collect::<Vec<_>>();
        // 11 and 12 finish first: nothing can be acknowledged while 10 runs.
        tokens[1] = None;
        tokens[2] = None;
        assert!(acks.lock().unwrap().is_empty());
        assert_eq!(progress.handled(), 10);
        tokens[0] = None;
        assert_eq!(*acks.lock().unwrap(), [(7, 13)]);
        tokens[3] = None;
        assert_eq!(*acks.lock().unwrap(), [(7, 13), (7, 14)]);
        assert_eq!(progress.handled(), 14);
    }

    #[test]
    fn an_abandoned_event_is_never_acknowledged() {
        let (progress, acks) = recording();
        progress.restart(1, 0);
        progress.accept(0, 2);
        let first = progress.token(1, 0);
        first.abandon();
        drop(first);
        drop(progress.token(1, 1));
        assert!(acks.lock().unwrap().is_empty());
        assert_eq!(progress.handled(), 0);
    }

    #[test]
    fn events_given_up_by_the_sender_count_as_done_and_old_runs_do_not_count() {
        let (progress, acks) = recording();
        progress.restart(1, 0);
        progress.accept(0, 1);
        let old = progress.token(1, 0);
        // The sender gave up 1..5; 5 is next.
        progress.accept(5, 1);
        drop(progress.token(1, 5));
        assert!(acks.lock().unwrap().is_empty(), "0 is still running");
        drop(old);
        assert_eq!(*acks.lock().unwrap(), [(1, 6)]);
        // A new run of the origin: a token of the old run changes nothing.
        progress.accept(6, 1);
        let stale = progress.token(1, 6);
        progress.restart(2, 100);
        drop(stale);
        assert_eq!(progress.handled(), 100);
        assert_eq!(acks.lock().unwrap().len(), 1);
    }
}
