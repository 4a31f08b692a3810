//! The events and managers of the memory bench: a 64-byte notification, a manager that can be
//! held busy so that its mailbox fills, and the generated idle manager types (`build.rs`).

use edri::EdriBuilder;
use edri::prelude::*;
use std::sync::Arc;

/// A notification carrying 64 bytes, as in the issue.
#[event(notification)]
pub struct Blob {
    /// The payload.
    pub words: [u64; 8],
}

/// Holds [`Hold`] in its handler until [`Hold::release`] is notified.
#[event(notification)]
pub struct Gate;

/// What the idle managers subscribe to (never sent).
#[event(notification)]
pub struct Poke;

/// Queues [`Blob`]s behind a [`Gate`] that blocks its handler.
pub struct Hold {
    /// Notified to let the handler of [`Gate`] return.
    pub release: Arc<tokio::sync::Notify>,
    /// Sum of what it saw.
    pub sum: u64,
}

#[manager(manual)]
impl Hold {
    #[solve]
    async fn gate(&mut self, _ev: &Gate) {
        self.release.notified().await;
    }

    #[solve]
    fn blob(&mut self, ev: &Blob) {
        self.sum = self.sum.wrapping_add(ev.words[7]);
    }
}

include!(concat!(env!("OUT_DIR"), "/idle.rs"));
