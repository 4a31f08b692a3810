//! `#[solve(thread, limit = N)]`: handlers on tokio's blocking thread pool.

use super::{WorkerStart, join_message};
use crate::Ctx;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::mode::Dispatch;
use tokio::sync::OwnedSemaphorePermit;

/// Prepares a thread-mode call of handler `handler` of the manager owning `ctx`.
pub(crate) fn call<E, F>(ctx: &Ctx, handler: u16, envelope: Envelope, f: F) -> WorkerStart
where
    E: Event,
    F: FnOnce(E, Ctx) -> Result<E::Output, crate::Failure> + Send + 'static,
{
    let (event, reply) = E::__open(envelope);
    let limit = ctx.own_slot().limits[usize::from(handler)].clone();
    let ctx = ctx.clone();
    let span = tracing::Span::current();
    let link = crate::trace::current();
    let start = move |permit: Option<OwnedSemaphorePermit>| {
        let worker_ctx = ctx.clone();
        let since = ctx.shared().clock();
        ctx.clone().spawn(async move {
            let joined = tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                let _trace = crate::trace::enter(link);
                let _permit = permit;
                E::__own(event).and_then(|event| f(event, worker_ctx))
            })
            .await;
            let result = joined.unwrap_or_else(|join| {
                let message = join_message(join);
                let manager = ctx.manager_name().unwrap_or("?");
                let method = ctx.own_slot().descriptor.handlers
                    [usize::from(handler)]
                .method;
                tracing::error!(manager, method, event = E::META.name, panic = %message, "thread handler panicked");
                ctx.shared().stats(ctx.origin()).crashed();
                Err(crate::manager::panicked(manager, method, &message))
            });
            ctx.shared().record_call(ctx.origin(), handler, since);
            crate::mode::dispatch::send::<E>(&ctx, reply, result);
        });
    };
    WorkerStart { limit, start: Box::new(start) }
}
