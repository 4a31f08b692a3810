//! `#[solve(process, limit = N)]`: handlers in child processes of this same binary.
//!
//! Each process handler has a pool of up to `limit` workers ([`pool`]), started on first need
//! and reused. A call ships the event as postcard to an idle worker and waits for its answer,
//! relaying the worker's own `ctx.notify` / `try_notify` / `request` / `request_all` to this
//! router meanwhile ([`relay`]). A worker that dies is reaped and the call fails with
//! `Crashed`. A worker is killed, and the call fails, when the call overruns the worker
//! timeout (`Timeout`), when its requester stops waiting — its own `.timeout(..)` passed or it
//! dropped the request — (`Timeout`, seen by nobody), or when the router stops after its grace
//! period (`Unavailable`); every kill is counted by reason ([`kills`]). The next call starts a
//! fresh worker.

mod bridge;
mod child;
mod kills;
mod pool;
mod protocol;
mod relay;
pub(crate) mod tunnel;
mod turns;

pub use child::{WORKER_ENV, is_worker, serve_if_worker};

use crate::mode::Dispatch;
pub(crate) use kills::render as render_kills;
pub(crate) use pool::Pool;
use pool::TunnelCall;

use super::WorkerStart;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::{Ctx, Failure};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Prepares a process-mode call of handler `handler` of the manager owning `ctx`.
pub(crate) fn call<E: Event>(ctx: &Ctx, handler: u16, envelope: Envelope) -> WorkerStart {
    let (event, reply) = E::__open(envelope);
    start(ctx, handler, event, reply, None)
}

/// Prepares a process-mode call of tunnel acceptor `handler`: the worker runs the acceptor,
/// this router holds the opening and bridges the accepted tunnel to the worker.
pub(crate) fn accept<E: crate::TunnelEvent>(
    ctx: &Ctx,
    handler: u16,
    envelope: Envelope,
) -> WorkerStart {
    let (event, opening, reply) =
        <crate::event::kind::Tunnel as super::dispatch::Accept<E>>::__accept(envelope);
    let window = opening.window();
    let decided = Box::new(move |answer, remote| {
        tunnel::decided(opening, answer, remote);
    });
    start(ctx, handler, event, reply, Some(TunnelCall { decided, window }))
}

/// A call of `event` in a worker of handler `handler`, once a slot is free; its answer goes to
/// `reply`.
fn start<E: Event>(
    ctx: &Ctx,
    handler: u16,
    event: crate::envelope::EventBox<E>,
    reply: crate::envelope::Reply,
    tunnel: Option<TunnelCall>,
) -> WorkerStart {
    let slot = ctx.own_slot();
    let limit = slot.limits[usize::from(handler)].clone();
    let pool = slot.pools[usize::from(handler)].clone();
    let ctx = ctx.clone();
    let trace = crate::trace::context();
    let start = move |permit: Option<OwnedSemaphorePermit>| {
        let since = ctx.shared().clock();
        ctx.clone().spawn(async move {
            let _permit = permit;
            let mut reply = reply;
            let result = match (pool, crate::ctx::encode(&*event)) {
                (Some(pool), Ok(payload)) => {
                    let timeout = ctx.shared().worker_timeout;
                    let gone = std::pin::pin!(reply.requester_gone::<E, E::Output>());
                    pool.call(&ctx, payload, timeout, tunnel, gone, trace).await.and_then(|bytes| {
                        postcard::from_bytes(&bytes).map_err(|e| {
                            Failure::invalid(format!("malformed answer from a worker: {e}"))
                        })
                    })
                }
                (None, _) => Err(Failure::failed("no worker pool for this handler")),
                (_, Err(f)) => Err(f),
            };
            if result.as_ref().is_err_and(|f| f.status() == crate::Status::Crashed) {
                ctx.shared().stats(ctx.origin()).crashed();
            }
            ctx.shared().record_call(ctx.origin(), handler, since);
            crate::mode::dispatch::send::<E>(&ctx, reply, result);
        });
    };
    WorkerStart { limit, start: Box::new(start) }
}

/// Pools of every manager's process handlers, by handler index.
pub(crate) type Pools = Box<[Option<Arc<Pool>>]>;

/// Stops the workers of every process handler of the router: see [`Pool::shutdown`].
pub(crate) async fn shutdown(shared: &crate::router::Shared) {
    let pools = || shared.managers.iter().flat_map(|m| m.pools.iter().flatten());
    // Every busy call is told first, so that all kill their workers at once.
    for pool in pools() {
        pool.stop_calls();
    }
    for pool in pools() {
        pool.shutdown().await;
    }
}
