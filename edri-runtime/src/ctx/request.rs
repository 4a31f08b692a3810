//! [`Call`] and [`Pending`]: a request on its way.

use super::{Ctx, SendFuture, decode_output, encode, stopped};
use crate::Failure;
use crate::envelope::{Envelope, EventBox};
use crate::event::Event;
use crate::router::BoxFuture;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;
use tokio::time::Sleep;

impl Ctx {
    /// A request for any event type (the kind was checked by the caller).
    pub(crate) fn request_event<E: Event>(
        &self,
        event: E,
        timeout: Duration,
        priority: u8,
    ) -> Pending<'_, E> {
        Pending {
            state: State::Start { ctx: self, event: Some(event) },
            timeout,
            priority,
            yielded: false,
            sleep: None,
        }
    }
}

impl<E: Event> Pending<'_, E> {
    /// Arms the timer as soon as the request is queued, without first yielding once for
    /// the answer: for a caller whose task is costly to poll again (an HTTP connection
    /// under its layers) and whose responder rarely answers within that yield.
    pub(crate) fn arm_at_once(mut self) -> Self {
        self.yielded = true;
        self
    }
}

/// A request on its way: `.await` it, or set [`timeout`](Self::timeout) first.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// # use std::time::Duration;
/// # #[event(request)] pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let half = ctx
///     .request(Divide { a: 1.0, b: 2.0 })
///     .timeout(Duration::from_millis(200)) // `Timeout` after that
///     .priority(0) // the most urgent lane of a `queue = priority` responder
///     .await?;
/// assert_eq!(half.quotient, 0.5);
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until awaited"]
pub struct Call<'a, E> {
    ctx: &'a Ctx,
    event: E,
    timeout: Duration,
    priority: u8,
}

impl<'a, E: Event> Call<'a, E> {
    pub(super) fn new(ctx: &'a Ctx, event: E, timeout: Duration, priority: u8) -> Self {
        Self { ctx, event, timeout, priority }
    }

    /// Fails with `Timeout` when no response arrived within `timeout` (including the time
    /// spent waiting for room in a full mailbox).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Queues the request in lane `priority` (0 is most urgent) of a
    /// `#[manager(queue = priority)]` responder, instead of the event's default lane.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
}

impl<'a, E: Event> IntoFuture for Call<'a, E> {
    type Output = Result<E::Output, Failure>;
    type IntoFuture = Pending<'a, E>;

    fn into_future(self) -> Pending<'a, E> {
        self.ctx.request_event(self.event, self.timeout, self.priority)
    }
}

type Reply<E> = oneshot::Receiver<Result<<E as Event>::Output, Failure>>;

enum State<'a, E: Event> {
    Start {
        ctx: &'a Ctx,
        event: Option<E>,
    },
    /// Only when the mailbox was full: waiting for room (the one boxed path).
    Sending {
        send: SendFuture<'a>,
        reply: Reply<E>,
    },
    Waiting {
        reply: Reply<E>,
    },
    /// No responder here: sent up the uplink (from a worker process to its parent).
    Remote {
        call: BoxFuture<Result<Vec<u8>, Failure>>,
    },
    Done,
}

pin_project_lite::pin_project! {
    /// The future of a [`Call`]. It allocates the request once, and a timer only when the
    /// response is not immediately there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use edri::prelude::*;
    /// # #[event(request)] pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
    /// use std::future::IntoFuture;
    /// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
    /// // To hold a request as a future (e.g. for `tokio::select!` or `join!`):
    /// let pending: edri::Pending<'_, Divide> = ctx.request(Divide { a: 1.0, b: 2.0 }).into_future();
    /// let half = pending.await?;
    /// # let _ = half;
    /// # Ok(()) }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Pending<'a, E: Event> {
        state: State<'a, E>,
        timeout: Duration,
        priority: u8,
        yielded: bool,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<E: Event> Future for Pending<'_, E> {
    type Output = Result<E::Output, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Start { ctx, event } => {
                    let ctx: &Ctx = ctx;
                    if ctx.refuses() {
                        *this.state = State::Done;
                        return Poll::Ready(Err(stopped::<E>()));
                    }
                    let target = match ctx.responder::<E>() {
                        Ok(t) => t,
                        Err(f) => {
                            let event = event.take().expect("polled after start");
                            *this.state = match ctx.uplink::<E>() {
                                Some(uplink) if f.status() == crate::Status::Unavailable => {
                                    match encode(&event) {
                                        Ok(bytes) => State::Remote {
                                            call: uplink.clone().request(
                                                ctx.outbound::<E>(),
                                                bytes,
                                                *this.timeout,
                                            ),
                                        },
                                        Err(f) => return Poll::Ready(Err(f)),
                                    }
                                }
                                _ => {
                                    *this.state = State::Done;
                                    return Poll::Ready(Err(f));
                                }
                            };
                            continue;
                        }
                    };
                    let event = event.take().expect("polled after start");
                    let (tx, rx) = oneshot::channel();
                    let envelope = Envelope::request(
                        target.handler,
                        *this.priority,
                        EventBox::Owned(event),
                        tx,
                    );
                    // A thread or process handler never answers within a yield: no yield.
                    *this.yielded |= !target.inline;
                    *this.state = match target.mailbox.try_send(envelope) {
                        Ok(()) => State::Waiting { reply: rx },
                        Err(TrySendError::Full(envelope)) => {
                            let mailbox = target.mailbox.clone();
                            State::Sending {
                                send: Box::pin(async move { mailbox.send(envelope).await.is_ok() }),
                                reply: rx,
                            }
                        }
                        Err(TrySendError::Closed(_)) => {
                            *this.state = State::Done;
                            return Poll::Ready(Err(stopped::<E>()));
                        }
                    };
                }
                State::Sending { send, .. } => match send.as_mut().poll(cx) {
                    Poll::Ready(true) => {
                        let State::Sending { reply, .. } =
                            std::mem::replace(this.state, State::Done)
                        else {
                            unreachable!()
                        };
                        *this.state = State::Waiting { reply };
                    }
                    Poll::Ready(false) => {
                        *this.state = State::Done;
                        return Poll::Ready(Err(stopped::<E>()));
                    }
                    Poll::Pending => break,
                },
                State::Waiting { reply } => match Pin::new(reply).poll(cx) {
                    Poll::Ready(result) => {
                        *this.state = State::Done;
                        return Poll::Ready(result.unwrap_or_else(|_| {
                            Err(Failure::crashed(format!(
                                "the responder of `{}` stopped without answering",
                                E::META.name
                            )))
                        }));
                    }
                    Poll::Pending => break,
                },
                State::Remote { call } => match call.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        *this.state = State::Done;
                        return Poll::Ready(result.and_then(|bytes| decode_output::<E>(&bytes)));
                    }
                    Poll::Pending => break,
                },
                State::Done => panic!("`Pending` polled after completion"),
            }
        }
        // Not answered yet. A request that was queued straight away to an inline handler first
        // yields once instead of arming its timer: when the responder shares this runtime
        // thread it answers during that yield, and a timer would have cost more than the whole
        // round trip. Otherwise the deadline is armed now (one yield after the call began, or
        // at once for a thread or process handler, whose answer takes longer than a yield: on
        // a multi-thread runtime the yield would wake another worker for nothing).
        if this.sleep.is_none() {
            if !*this.yielded && matches!(this.state, State::Waiting { .. }) {
                *this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            *this.state = State::Done;
            return Poll::Ready(Err(Failure::timeout(format!(
                "no response to `{}` within {:?}",
                E::META.name,
                this.timeout
            ))));
        }
        Poll::Pending
    }
}
