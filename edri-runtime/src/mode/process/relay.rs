//! What a worker's `Ctx` asks of its parent during a call: `notify`, `try_notify`, `request`
//! and `request_all`, answered by the parent's router as if a handler of the calling manager
//! had sent them.

use super::protocol::ToParent;
use crate::registry::EventRegistration;
use crate::{Ctx, Failure};
use std::time::Duration;

/// Answers a worker's `Notify`, `TryNotify`, `Request` or `RequestAll` frame: the id to reply
/// to and the reply; `None` for any other frame.
pub(super) async fn answer(ctx: &Ctx, frame: ToParent) -> Option<(u64, Result<Vec<u8>, Failure>)> {
    let trace = match &frame {
        ToParent::Notify { trace, .. }
        | ToParent::TryNotify { trace, .. }
        | ToParent::Request { trace, .. }
        | ToParent::RequestAll { trace, .. } => trace.map(crate::trace::Link::remote),
        _ => None,
    };
    crate::trace::scope(trace, relay(ctx, frame)).await
}

async fn relay(ctx: &Ctx, frame: ToParent) -> Option<(u64, Result<Vec<u8>, Failure>)> {
    Some(match frame {
        ToParent::Notify { id, event, payload, .. } => {
            (id, notify(ctx, &event, payload).await.map(|()| Vec::new()))
        }
        ToParent::TryNotify { id, event, payload, .. } => {
            (id, try_notify(ctx, &event, &payload).await.map(|()| Vec::new()))
        }
        ToParent::Request { id, event, payload, timeout_ms, .. } => {
            (id, request(ctx, &event, payload, Duration::from_millis(timeout_ms)).await)
        }
        ToParent::RequestAll { id, event, payload, timeout_ms, .. } => {
            let answers = request_all(ctx, &event, payload, Duration::from_millis(timeout_ms));
            (id, crate::ctx::encode(&answers.await))
        }
        _ => return None,
    })
}

fn registration(name: &str) -> Result<&'static EventRegistration, Failure> {
    crate::registry::event(name).ok_or_else(|| {
        Failure::invalid(format!("a worker sent `{name}`, an event this binary does not declare"))
    })
}

/// A context that reaches this router's managers only (not its switch): for the parts of a
/// relay that the relay sends to other routers itself.
fn local_only(ctx: &Ctx) -> Ctx {
    Ctx::new(ctx.shared().clone(), crate::ctx::Origin::Remote)
}

async fn notify(ctx: &Ctx, event: &str, payload: Vec<u8>) -> Result<(), Failure> {
    (registration(event)?.notify_bytes)(ctx.clone(), &payload, None).await
}

/// Delivers now or refuses: every local subscriber must have room (checked by reserving a
/// slot in each, all or none) and the switch's buffer must take it; then it is delivered.
/// (The reservations are released just before the delivery: a sender that takes the room in
/// that instant makes the delivery wait for the next free slot, it never drops it.)
async fn try_notify(ctx: &Ctx, event: &str, payload: &[u8]) -> Result<(), Failure> {
    let registration = registration(event)?;
    let shared = ctx.shared();
    let route = shared.route((registration.type_id)());
    let targets = route.map_or(&[][..], |r| &r.subscribers);
    let mut permits = Vec::with_capacity(targets.len());
    for target in targets {
        match target.mailbox.try_reserve() {
            Ok(permit) => permits.push(permit),
            Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {
                return Err(Failure::unavailable(format!("a subscriber of `{event}` is full")));
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => {
                return Err(Failure::unavailable(format!(
                    "a subscriber of `{event}` stopped (the router is stopping)"
                )));
            }
        }
    }
    if let Some(uplink) = shared.uplink.as_ref().filter(|_| !registration.meta.local)
        && let Some(route) = route
        && uplink.wants(route.outbound(), !targets.is_empty())
    {
        uplink.try_notify(route.outbound(), payload)?;
    }
    drop(permits);
    if targets.is_empty() {
        return Ok(());
    }
    (registration.notify_bytes)(local_only(ctx), payload, None).await
}

async fn request(
    ctx: &Ctx,
    event: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    (registration(event)?.request_bytes)(ctx.clone(), &payload, timeout).await
}

/// This router's responder (unless it is the calling manager itself) and every other router's,
/// asked at once.
async fn request_all(
    ctx: &Ctx,
    event: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Vec<Result<Vec<u8>, Failure>> {
    let registration = match registration(event) {
        Ok(r) => r,
        Err(failure) => return vec![Err(failure)],
    };
    let shared = ctx.shared();
    let remote = shared.uplink.as_ref().filter(|_| !registration.meta.local).map(|uplink| {
        ctx.spawn(uplink.clone().request_all(registration.meta.name, payload.clone(), timeout))
    });
    let mut answers = Vec::new();
    let route = shared.route((registration.type_id)());
    if let Some(target) = route.and_then(|r| r.responder.as_ref()) {
        answers.push(if ctx.origin().is_manager(target.manager) {
            Err(Failure::failed("a manager cannot answer its own request_all"))
        } else {
            (registration.request_bytes)(local_only(ctx), &payload, timeout).await
        });
    }
    if let Some(remote) = remote {
        match remote.await {
            Ok(theirs) => answers.extend(theirs),
            Err(e) => answers.push(Err(Failure::crashed(format!(
                "gathering the other routers' answers to `{event}` failed: {e}"
            )))),
        }
    }
    answers
}
