//! How handlers run away from their manager's task: on threads of their own ([`thread`]) or
//! in child processes of the same binary ([`process`]). Inline handlers run in the manager's
//! own task (`manager.rs`).
//!
//! Both modes share the admission rule: at most `limit` calls of one handler at once; the
//! manager waits for a free slot before taking its next event, so calls start in arrival
//! order and a busy handler applies backpressure through the mailbox.

pub(crate) mod dispatch;
pub(crate) mod process;
pub(crate) mod thread;

pub use dispatch::{Accept, Dispatch};

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A call waiting for a free slot of its handler.
pub struct WorkerStart {
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) start: Box<dyn FnOnce(Option<OwnedSemaphorePermit>) + Send>,
}

impl WorkerStart {
    /// Waits for a free slot, then starts the call.
    pub async fn run(self) {
        let permit = match self.limit {
            Some(limit) => limit.acquire_owned().await.ok(),
            None => None,
        };
        (self.start)(permit);
    }
}
