//! Which of a worker's two serving threads reads the parent's pipe.
//!
//! The thread that reads a call runs it itself, so a call costs the worker no wake-up of
//! another thread. While the call runs, the pipe is left for the other thread, which is woken
//! only when the call needs the parent's frames: its `Ctx` asked the parent something (the
//! answer comes through the pipe) or it is a tunnel's acceptor (the tunnel's messages do).
//! After its call, a thread takes the pipe back unless the other thread is reading it; a
//! thread that reads a call while the other one waits leaves it waiting.

use std::io::Stdin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The pipe from the parent, and whose turn it is to read it.
pub(super) struct Turns {
    turn: Mutex<Turn>,
    changed: Condvar,
}

struct Turn {
    /// The pipe, while no thread reads it.
    input: Option<Stdin>,
    /// A call runs.
    calling: bool,
    /// The running call needs the parent's frames read.
    wanted: bool,
    /// The parent closed the pipe (or broke the protocol): no more turns.
    ended: bool,
}

impl Turns {
    pub(super) fn new(input: Stdin) -> Self {
        let turn = Turn { input: Some(input), calling: false, wanted: false, ended: false };
        Self { turn: Mutex::new(turn), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Turn> {
        self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pipe, once it is this thread's turn to read it: when no thread reads it and no
    /// call runs, or the running call wants its frames. `None` once the turns ended.
    pub(super) fn take(&self) -> Option<Stdin> {
        let mut turn = self.lock();
        loop {
            if turn.ended {
                return None;
            }
            if turn.input.is_some() && (!turn.calling || turn.wanted) {
                return turn.input.take();
            }
            turn = self.changed.wait(turn).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A call begins on this thread, which read it from `input`; `wanted` when the call needs
    /// the parent's frames from the start (a tunnel's acceptor).
    pub(super) fn begin(&self, input: Stdin, wanted: bool) {
        let mut turn = self.lock();
        turn.input = Some(input);
        turn.calling = true;
        turn.wanted = wanted;
        drop(turn);
        if wanted {
            self.changed.notify_one();
        }
    }

    /// The running call needs the parent's frames: the other thread reads them (woken if the
    /// pipe waits for a reader). Outside a call, a thread reads them already.
    pub(super) fn want(&self) {
        let mut turn = self.lock();
        if !turn.calling || turn.wanted {
            return;
        }
        turn.wanted = true;
        let wake = turn.input.is_some();
        drop(turn);
        if wake {
            self.changed.notify_one();
        }
    }

    /// The call ended (before its answer is sent: the next call may come right after).
    pub(super) fn finish(&self) {
        let mut turn = self.lock();
        turn.calling = false;
        turn.wanted = false;
    }

    /// No more turns: the parent closed the pipe, or sent what this worker cannot read.
    pub(super) fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_all();
    }
}
