//! Requests this router sent to other routers, waiting for their responses.

use super::Connector;
use crate::Failure;
use crate::router::Outbound;
use crate::switch::frame::Item;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// A serialized response, or why there is none.
type Answer = Result<Vec<u8>, Failure>;

/// The calls waiting for a response, by number.
#[derive(Default)]
pub(super) struct Calls {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next: AtomicU64,
}

impl Calls {
    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new call: its number and its answer. The call is forgotten when the guard drops,
    /// however the caller's future ends (answered, timed out, dropped).
    fn begin(&self) -> (Pending<'_>, oneshot::Receiver<Answer>) {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(call, tx);
        (Pending { calls: self, call }, rx)
    }

    /// Hands the response to call `call` to its caller, if it still waits.
    pub(super) fn resolve(&self, call: u64, answer: Answer) {
        let waiter = self.waiting().remove(&call);
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }

    /// Fails every waiting call (the router is stopping).
    pub(super) fn clear(&self) {
        self.waiting().clear();
    }
}

/// A call in progress: removed from the table when dropped.
struct Pending<'a> {
    calls: &'a Calls,
    call: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.calls.waiting().remove(&self.call);
    }
}

impl Connector {
    /// Sends request `event` to router `to` and waits for its response.
    pub(super) async fn call(
        &self,
        to: Arc<str>,
        event: Outbound,
        payload: &[u8],
        timeout: Duration,
    ) -> Answer {
        let (pending, rx) = self.calls.begin();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let trace = crate::trace::context();
        let (call, epoch) = (pending.call, self.epoch);
        let id = Self::wire(event)?;
        let request = Item::Request { call, epoch, event: id, timeout_ms, payload, trace };
        let answer = async {
            self.enqueue(std::slice::from_ref(&to), &request, false).await?;
            rx.await.unwrap_or_else(|_| Err(Failure::unavailable("the router is stopping")))
        };
        tokio::time::timeout(timeout, answer).await.unwrap_or_else(|_| {
            Err(Failure::timeout(format!(
                "no response to `{}` from router `{to}` within {timeout:?}",
                event.name
            )))
        })
    }

    /// Sends request `event` to every router that answers it and gathers their responses.
    pub(super) async fn call_all(
        self: Arc<Self>,
        event: &'static str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Vec<Answer> {
        let out = Outbound::named(event);
        let to = self.peers.read().responders(out).cloned().unwrap_or_default();
        let payload: Arc<[u8]> = payload.into();
        // All calls are on their way before the first answer is awaited.
        let calls: Vec<_> = to
            .iter()
            .cloned()
            .map(|to| {
                let (this, payload) = (self.clone(), payload.clone());
                tokio::spawn(async move { this.call(to, out, &payload, timeout).await })
            })
            .collect();
        let mut out = Vec::with_capacity(calls.len());
        for call in calls {
            out.push(
                call.await.unwrap_or_else(|_| Err(Failure::unavailable("the router is stopping"))),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_answered_once_and_forgotten_when_it_ends() {
        let calls = Calls::default();
        let (first, mut first_rx) = calls.begin();
        let (second, second_rx) = calls.begin();
        assert_eq!((first.call, second.call), (0, 1));
        calls.resolve(0, Ok(vec![7]));
        calls.resolve(0, Ok(vec![8]));
        assert_eq!(first_rx.try_recv().unwrap().unwrap(), [7]);
        drop(second);
        assert!(calls.waiting().is_empty(), "an abandoned call is forgotten");
        drop(second_rx);
        calls.resolve(1, Ok(vec![9]));
        drop(first);
        let (_third, third_rx) = calls.begin();
        calls.clear();
        assert!(third_rx.blocking_recv().is_err(), "cleared: the caller sees the router stop");
    }
}
