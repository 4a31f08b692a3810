//! [`CallAll`]: a request to every responder.

use super::{Ctx, decode_output, encode, stopped};
use crate::Failure;
use crate::envelope::{Envelope, EventBox};
use crate::event::Event;
use std::any::TypeId;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A request to every responder: `.await` it, or set [`timeout`](Self::timeout) first.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// # use std::time::Duration;
/// # #[event(request)] pub struct Ping { #[response] pub router: String }
/// # async fn f(ctx: &Ctx) {
/// let answers = ctx.request_all(Ping {}).timeout(Duration::from_secs(1)).await;
/// let routers: Vec<String> = answers.into_iter().filter_map(Result::ok).map(|p| p.router).collect();
/// # }
/// ```
#[must_use = "a request does nothing until awaited"]
pub struct CallAll<'a, E> {
    ctx: &'a Ctx,
    event: E,
    timeout: Duration,
}

impl<'a, E: Event> CallAll<'a, E> {
    pub(super) fn new(ctx: &'a Ctx, event: E, timeout: Duration) -> Self {
        Self { ctx, event, timeout }
    }

    /// The deadline for each responder's answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<'a, E: Event> IntoFuture for CallAll<'a, E> {
    type Output = Vec<Result<E::Output, Failure>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            if self.ctx.refuses() {
                return vec![Err(stopped::<E>())];
            }
            // Other routers' responders work meanwhile.
            let remote = self.ctx.uplink::<E>().map(|uplink| {
                let call = encode(&self.event)
                    .map(|bytes| uplink.clone().request_all(E::META.name, bytes, self.timeout));
                call.map(|call| self.ctx.spawn(call))
            });
            let event = Arc::new(self.event);
            let mut replies = Vec::new();
            let route = self.ctx.shared.route_of_send(TypeId::of::<E>(), self.ctx.origin);
            for target in route.iter().flat_map(|r| r.responder.iter()) {
                if self.ctx.origin.is_manager(target.manager) {
                    replies
                        .push(Err(Failure::failed("a manager cannot answer its own request_all")));
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                let envelope = Envelope::request(
                    target.handler,
                    E::META.priority,
                    EventBox::Shared(event.clone()),
                    tx,
                );
                match tokio::time::timeout(self.timeout, target.mailbox.send(envelope)).await {
                    Ok(Ok(())) => replies.push(Ok(rx)),
                    Ok(Err(_)) => replies.push(Err(stopped::<E>())),
                    Err(_) => {
                        replies.push(Err(Failure::timeout("mailbox full until the deadline")))
                    }
                }
            }
            let mut out = Vec::with_capacity(replies.len());
            for reply in replies {
                out.push(match reply {
                    Ok(rx) => match tokio::time::timeout(self.timeout, rx).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(_)) => {
                            Err(Failure::crashed("the responder stopped without answering"))
                        }
                        Err(_) => Err(Failure::timeout(format!(
                            "no response to `{}` within {:?}",
                            E::META.name,
                            self.timeout
                        ))),
                    },
                    Err(f) => Err(f),
                });
            }
            match remote {
                None => {}
                Some(Err(failure)) => out.push(Err(failure)),
                Some(Ok(call)) => {
                    let answers = call.await.unwrap_or_default();
                    out.extend(
                        answers
                            .into_iter()
                            .map(|answer| answer.and_then(|bytes| decode_output::<E>(&bytes))),
                    );
                }
            }
            out
        })
    }
}
