//! Opening a tunnel: the [`Open`] future behind `Ctx::open`, the acceptor's [`Opening`] and its
//! verdict.

use super::{Acceptor, Opener, Tunnel};
use super::{pipe, remote};
use crate::event::TunnelEvent;
use crate::{Failure, Status};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// The pipes of a new tunnel: the opener's end and the acceptor's end.
pub(crate) fn pair<E: TunnelEvent>(window: usize) -> (Tunnel<E, Opener>, Tunnel<E, Acceptor>) {
    let (to_acceptor, from_opener) = pipe::pipe::<E::Send>(window);
    let (to_opener, from_acceptor) = pipe::pipe::<E::Receive>(window);
    (Tunnel::new(to_acceptor, from_acceptor, window), Tunnel::new(to_opener, from_opener, window))
}

/// The acceptor's answer, shared by the [`Opening`] and the handler's result. Unanswered when
/// both are gone, it answers with a failure.
pub(crate) struct Verdict {
    tx: Mutex<Option<oneshot::Sender<Result<(), Failure>>>>,
    event: &'static str,
}

impl Verdict {
    pub(crate) fn new(event: &'static str) -> (Arc<Self>, oneshot::Receiver<Result<(), Failure>>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Self { tx: Mutex::new(Some(tx)), event }), rx)
    }

    /// Answers, unless answered already; `false` when the opener no longer waits.
    pub(crate) fn answer(&self, result: Result<(), Failure>) -> bool {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner).take();
        tx.is_some_and(|tx| tx.send(result).is_ok())
    }
}

/// A tunnel waiting for its acceptor's answer: what an acceptor handler takes.
///
/// [`accept`](Self::accept) it (and move the end into a task or a thread) or
/// [`reject`](Self::reject) it. Dropped without either, the opener gets a failure; a handler
/// that returns `Err(x)` while the opening is unanswered rejects it with `x`.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::Chunk;
///
/// #[event(tunnel, send = Chunk, receive = Chunk)]
/// pub struct Convert { pub to: String }
///
/// #[derive(Default)]
/// pub struct Converter;
///
/// #[manager]
/// impl Converter {
///     #[solve]
///     fn convert(&mut self, ev: &Convert, opening: Opening<Convert>, ctx: &Ctx) {
///         if ev.to != "upper" {
///             return opening.reject(Failure::invalid("only `upper`")); // `ctx.open` gets it
///         }
///         let Ok(mut end) = opening.accept() else { return }; // the opener gave up
///         ctx.spawn(async move {
///             while let Some(chunk) = end.recv().await? {
///                 end.send(Chunk(chunk.to_ascii_uppercase())).await?;
///             }
///             end.close();
///             Ok::<_, Failure>(())
///         });
///     }
/// }
/// ```
// No `E: TunnelEvent` bound on the type itself (only on its methods): an acceptor written for
// an event that is not a tunnel gets one error, on the event, not one per mention of the type.
pub struct Opening<E> {
    verdict: Arc<Verdict>,
    /// The acceptor's end, a `Tunnel<E, Acceptor>`.
    end: Option<Box<dyn std::any::Any + Send>>,
    window: usize,
    _event: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Opening<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening").field("event", &self.verdict.event).finish_non_exhaustive()
    }
}

impl<E: TunnelEvent> Opening<E> {
    pub(crate) fn new(end: Tunnel<E, Acceptor>, verdict: Arc<Verdict>) -> Self {
        let window = end.window();
        Self { verdict, end: Some(Box::new(end)), window, _event: PhantomData }
    }

    /// Confirms the tunnel and returns this side's end.
    ///
    /// # Errors
    /// `Unavailable` when the opener no longer waits (it timed out or went away).
    pub fn accept(mut self) -> Result<Tunnel<E, Acceptor>, Failure> {
        let end = self.end.take().and_then(|end| end.downcast::<Tunnel<E, Acceptor>>().ok());
        match end {
            Some(end) if self.verdict.answer(Ok(())) => Ok(*end),
            _ => Err(Failure::unavailable(format!(
                "the opener of tunnel `{}` no longer waits for it",
                E::META.name
            ))),
        }
    }

    /// Refuses the tunnel: the opener's [`Ctx::open`](crate::Ctx::open) returns `failure`.
    pub fn reject(mut self, failure: impl Into<Failure>) {
        self.end = None;
        self.verdict.answer(Err(failure.into()));
    }
}

impl<E> Opening<E> {
    pub(crate) fn verdict(&self) -> &Arc<Verdict> {
        &self.verdict
    }

    /// The window of the tunnel: items each side may have in flight.
    pub fn window(&self) -> usize {
        self.window
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        let event = self.event;
        let failure = if std::thread::panicking() {
            Failure::crashed(format!("the acceptor of tunnel `{event}` panicked"))
        } else {
            Failure::failed(format!(
                "the acceptor of tunnel `{event}` neither accepted nor rejected it"
            ))
        };
        self.answer(Err(failure));
    }
}

/// Waits for the acceptor's answer.
pub(crate) async fn verdict(
    rx: oneshot::Receiver<Result<(), Failure>>,
    event: &str,
) -> Result<(), Failure> {
    rx.await.unwrap_or_else(|_| {
        Err(Failure::new(
            Status::Unavailable,
            format!("the acceptor of tunnel `{event}` went away before answering"),
        ))
    })
}

/// A tunnel being opened: `.await` it, or set [`timeout`](Self::timeout) or
/// [`window`](Self::window) first. See [`Ctx::open`](crate::Ctx::open).
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::Chunk;
/// use std::time::Duration;
/// # #[event(tunnel, send = Chunk, receive = Chunk)] pub struct Upper;
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let tunnel = ctx
///     .open(Upper)
///     .window(64) // items in flight each way (default 16)
///     .timeout(Duration::from_secs(2)) // for the acceptor's answer
///     .await?;
/// # let _ = tunnel;
/// # Ok(()) }
/// ```
#[must_use = "a tunnel is not opened until awaited"]
pub struct Open<'a, E> {
    ctx: &'a crate::Ctx,
    event: E,
    timeout: std::time::Duration,
    window: usize,
}

impl<'a, E: TunnelEvent> Open<'a, E> {
    pub(crate) fn new(ctx: &'a crate::Ctx, event: E) -> Self {
        let shared = ctx.shared();
        Self { ctx, event, timeout: shared.default_timeout, window: shared.tunnel_window }
    }

    /// How long the acceptor may take to answer.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Items each side may have in flight, sent and not yet taken by the other (at least 1).
    pub fn window(mut self, items: usize) -> Self {
        self.window = items.max(1);
        self
    }
}

impl<'a, E: TunnelEvent> std::future::IntoFuture for Open<'a, E> {
    type Output = Result<Tunnel<E>, Failure>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Self { ctx, event, timeout, window } = self;
            let name = E::META.name;
            let route = ctx.shared().route_of_send(std::any::TypeId::of::<E>(), ctx.origin());
            let Some(target) = route.and_then(|r| r.responder.as_ref()) else {
                if let Some(uplink) = ctx.uplink::<E>() {
                    return remote::open(ctx, uplink.clone(), event, window, timeout).await;
                }
                return Err(Failure::unavailable(format!("no acceptor for tunnel `{name}`")));
            };
            if ctx.origin().is_manager(target.manager) {
                return Err(Failure::failed(format!(
                    "`{}` would accept its own tunnel `{name}` and wait for itself forever",
                    ctx.manager_name().unwrap_or("?"),
                )));
            }
            let (mine, theirs) = pair::<E>(window);
            offer(target, event, theirs, timeout).await?;
            Ok(mine)
        })
    }
}

/// Offers tunnel `event` with the acceptor's end `end` to its acceptor `target`, and waits
/// (until `timeout`) for the answer.
pub(crate) async fn offer<E: TunnelEvent>(
    target: &crate::router::Target,
    event: E,
    end: Tunnel<E, Acceptor>,
    timeout: std::time::Duration,
) -> Result<(), Failure> {
    let name = E::META.name;
    let (answer, rx) = Verdict::new(name);
    let envelope = crate::envelope::Envelope::tunnel(
        target.handler,
        E::META.priority,
        event,
        Opening::new(end, answer),
    );
    let answered = async {
        target.mailbox.send(envelope).await.map_err(|_| crate::ctx::stopped::<E>())?;
        verdict(rx, name).await
    };
    tokio::time::timeout(timeout, answered).await.unwrap_or_else(|_| {
        Err(Failure::timeout(format!(
            "the acceptor of tunnel `{name}` did not answer within {timeout:?}"
        )))
    })
}
