//! The tunnel of an acceptor call in a worker: the call's loop carries its messages between
//! the router's bridge and the worker's pipe. When the call fails, the failure ends the tunnel
//! both ways and is what the bridge's later sends report, so a crash is never seen as "the
//! call is over".

use crate::Failure;
use crate::tunnel::remote::{Link, Message};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// What the loop of one call does besides reading the worker: its tunnel, once decided.
pub(super) struct Bridged {
    /// Messages from the worker, for the bridge.
    pub(super) incoming: mpsc::UnboundedSender<Message>,
    /// Messages from the bridge, for the worker.
    pub(super) outgoing: mpsc::UnboundedReceiver<Message>,
    /// How the call ended, when it failed (shared with [`ToCall`]).
    pub(super) ended: Arc<Mutex<Option<Failure>>>,
}

/// Sends a tunnel's messages to the loop of its call, which writes them to the worker.
pub(super) struct ToCall {
    pub(super) tx: mpsc::UnboundedSender<Message>,
    pub(super) ended: Arc<Mutex<Option<Failure>>>,
}

impl Link for ToCall {
    fn send(&self, message: Message) -> crate::router::BoxFuture<Result<(), Failure>> {
        // Once the loop is gone, a send fails with why the call ended: the loop records it
        // before it lets go of its receiver, so a crash is never reported as "call over".
        let sent = self.tx.send(message).map_err(|_| {
            self.ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| Failure::unavailable("the worker's call is over"))
        });
        Box::pin(std::future::ready(sent))
    }
}

/// Ends the tunnel of a call that ended with `failure` (both directions, after what the worker
/// sent before).
pub(super) fn end_tunnel(bridged: Option<Bridged>, failure: &Failure) {
    if let Some(b) = bridged {
        *b.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure.clone());
        let _ = b.incoming.send(Message::Stop(failure.clone()));
        let _ = b.incoming.send(Message::End(Some(failure.clone())));
    }
}

/// The next message of the bridge for the worker; never, once there is none.
pub(super) async fn outgoing(bridged: &mut Option<Bridged>) -> Message {
    match bridged {
        Some(b) => match b.outgoing.recv().await {
            Some(message) => message,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_after_the_call_failed_reports_that_failure() {
        let poll = |link: &ToCall, message| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match link.send(message).as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => unreachable!("a send to the call is immediate"),
            }
        };
        let (incoming, mut from_worker) = mpsc::unbounded_channel();
        let (tx, outgoing) = mpsc::unbounded_channel();
        let ended = Arc::new(Mutex::new(None));
        let link = ToCall { tx, ended: ended.clone() };
        assert!(poll(&link, Message::Credit(1)).is_ok(), "the call runs");
        let bridged = Bridged { incoming, outgoing, ended };
        end_tunnel(Some(bridged), &Failure::crashed("`M::m` panicked: boom"));
        // The bridge's next send, whenever it comes, fails with the crash, not "call over".
        let failure = poll(&link, Message::Credit(1)).unwrap_err();
        assert_eq!(failure.status(), crate::Status::Crashed, "{failure}");
        assert!(
            matches!(from_worker.try_recv(), Ok(Message::Stop(f)) if f.message().contains("boom"))
        );
        assert!(matches!(from_worker.try_recv(), Ok(Message::End(Some(_)))));

        // A call that ended well: the tunnel's sends after it are simply over.
        let (tx, outgoing) = mpsc::unbounded_channel();
        let link = ToCall { tx, ended: Arc::new(Mutex::new(None)) };
        drop(outgoing);
        let failure = poll(&link, Message::Credit(1)).unwrap_err();
        assert_eq!(failure.status(), crate::Status::Unavailable, "{failure}");
    }
}
