//! Tunnels: confirmed two-way streams of typed items between two parties.
//!
//! A tunnel event is declared with `#[event(tunnel, send = T, receive = U)]`. One party opens
//! it with [`Ctx::open`](crate::Ctx::open); the event goes to the one manager that accepts it
//! (this router's, else another router's through the switch), whose handler takes an
//! [`Opening<E>`] and either [accepts](Opening::accept) it or [rejects](Opening::reject) it.
//! Once accepted, both parties hold a [`Tunnel`]: the opener's end sends `T` and receives `U`,
//! the acceptor's end (`Tunnel<E, Acceptor>`) the other way round.
//!
//! ```ignore
//! #[event(tunnel, send = Chunk, receive = Chunk)]
//! pub struct Upper;
//!
//! #[manager]
//! impl Converter {
//!     #[solve]
//!     fn upper(&mut self, _: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
//!         let Ok(mut end) = opening.accept() else { return };
//!         ctx.spawn(async move {
//!             while let Some(chunk) = end.recv().await? {
//!                 end.send(chunk.to_ascii_uppercase()).await?;
//!             }
//!             end.close();
//!             Ok::<_, Failure>(())
//!         });
//!     }
//! }
//!
//! let mut tunnel = ctx.open(Upper).await?;
//! tunnel.send(Chunk(b"abc".to_vec())).await?;
//! tunnel.close();
//! while let Some(chunk) = tunnel.recv().await? { /* .. */ }
//! ```
//!
//! **Flow control.** Each direction holds at most [`window`](Tunnel::window) items that the
//! receiver has not taken yet (default 16, [`Open::window`] per tunnel,
//! [`EdriBuilder::tunnel_window`](crate::EdriBuilder::tunnel_window) per router): a sender
//! ahead of its receiver waits in [`send`](Tunnel::send). Across routers the receiving router
//! grants credits as its reader takes items, so a sender keeps at most one window queued on
//! its side and one window in flight.
//!
//! **Where the acceptor runs.** Inline on its manager's task (it answers at once, then moves
//! its end into a task or a thread), or in a worker process with `#[solve(process)]`: the
//! router keeps the opening and bridges the accepted tunnel over the worker's pipe.
//!
//! **Ends.** [`close`](Tunnel::close) ends one direction: the other party's `recv` gives
//! `Ok(None)` after the items sent before. Dropping an end without closing it, a panic of the
//! task holding it, or the loss of the other router (beyond the switch's outage window, or a
//! restart), or items given up beyond the outage window end the stream with an error on the
//! other side, never a hang and never a hole in the stream.

pub(crate) mod pipe;
#[doc(hidden)]
pub mod remote;

use crate::Ctx;
use crate::event::TunnelEvent;
use crate::{Failure, Status};
use pipe::{PipeRx, PipeTx, block_on};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Items in flight per direction when nobody says otherwise.
pub const DEFAULT_WINDOW: usize = 16;

mod sealed {
    pub trait Sealed {}
}

/// Which party holds a [`Tunnel`]: [`Opener`] or [`Acceptor`]. The side decides the item
/// types: the opener sends the event's `send` type, the acceptor its `receive` type.
pub trait Side: sealed::Sealed + Send + 'static {
    /// What this side sends.
    type Out<E: TunnelEvent>: Serialize + DeserializeOwned + Send + 'static;
    /// What this side receives.
    type In<E: TunnelEvent>: Serialize + DeserializeOwned + Send + 'static;
}

/// The side that called [`Ctx::open`](crate::Ctx::open): sends `E::Send`, receives
/// `E::Receive`.
#[derive(Debug)]
pub enum Opener {}

/// The side that accepted the [`Opening`]: sends `E::Receive`, receives `E::Send`.
#[derive(Debug)]
pub enum Acceptor {}

impl sealed::Sealed for Opener {}
impl sealed::Sealed for Acceptor {}

impl Side for Opener {
    type Out<E: TunnelEvent> = E::Send;
    type In<E: TunnelEvent> = E::Receive;
}

impl Side for Acceptor {
    type Out<E: TunnelEvent> = E::Receive;
    type In<E: TunnelEvent> = E::Send;
}

impl Ctx {
    /// Opens a tunnel: the event goes to the one manager that accepts it (this router's first,
    /// else another router's through the switch) and the tunnel is there once the acceptor
    /// confirmed it. Set [`Open::timeout`](crate::Open::timeout) (default: the request
    /// timeout) or [`Open::window`](crate::Open::window) before awaiting.
    ///
    /// ```ignore
    /// let mut tunnel = ctx.open(Convert { to: Format::Upper }).await?;
    /// tunnel.send(chunk).await?;
    /// ```
    ///
    /// # Errors
    /// The acceptor's rejection; `Unavailable` when no manager accepts `E`; `Timeout` when
    /// the acceptor did not answer in time.
    pub fn open<E: TunnelEvent>(&self, event: E) -> Open<'_, E> {
        Open::new(self, event)
    }

    /// Blocking twin of [`open`](Self::open).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// # Panics
    /// When called on a runtime worker thread (use `open(..).await` there).
    pub fn blocking_open<E: TunnelEvent>(&self, event: E) -> Result<Tunnel<E>, Failure> {
        self.shared().runtime.block_on(self.open(event).into_future())
    }
}

/// One end of an open tunnel of event `E`, held by side `S`.
///
/// `Tunnel<E>` is the opener's end; the acceptor's is `Tunnel<E, Acceptor>`. Move it into a
/// task ([`Ctx::spawn`](crate::Ctx::spawn)) or a thread (it has blocking twins of its
/// methods); [`split`](Self::split) it to send and receive from different places.
pub struct Tunnel<E: TunnelEvent, S: Side = Opener> {
    // Dropped in this order: the other side's sending fails before its receiving ends, so
    // whoever sees the end of the stream finds sending over too.
    pub(crate) rx: TunnelReceiver<S::In<E>>,
    pub(crate) tx: TunnelSender<S::Out<E>>,
    _event: PhantomData<fn() -> E>,
}

impl<E: TunnelEvent, S: Side> std::fmt::Debug for Tunnel<E, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("event", &E::META.name)
            .field("side", &std::any::type_name::<S>())
            .field("window", &self.tx.window)
            .finish_non_exhaustive()
    }
}

impl<E: TunnelEvent, S: Side> Tunnel<E, S> {
    fn new(tx: PipeTx<S::Out<E>>, rx: PipeRx<S::In<E>>, window: usize) -> Self {
        Self {
            rx: TunnelReceiver { pipe: rx },
            tx: TunnelSender { pipe: tx, window, credit: None },
            _event: PhantomData,
        }
    }

    /// Sends one item, waiting while the other side has a full window of items it has not
    /// taken yet.
    ///
    /// # Errors
    /// When this side was closed, or the other side stopped receiving (dropped its end,
    /// panicked, its router went away).
    pub async fn send(&mut self, item: S::Out<E>) -> Result<(), Failure> {
        self.tx.send(item).await
    }

    /// The next item from the other side; `Ok(None)` once it closed its side and every item
    /// it sent before was taken.
    ///
    /// # Errors
    /// When the other side ended with an error: dropped without closing, panicked, its router
    /// went away.
    pub async fn recv(&mut self) -> Result<Option<S::In<E>>, Failure> {
        self.rx.recv().await
    }

    /// Ends this side's items: the other side's `recv` gives `Ok(None)` after the items sent
    /// before. Receiving goes on.
    pub fn close(&mut self) {
        self.tx.finish(Ok(()));
    }

    /// Ends this side's items with an error the other side's `recv` returns (after the items
    /// sent before).
    pub fn fail(&mut self, failure: impl Into<Failure>) {
        self.tx.finish(Err(failure.into()));
    }

    /// The two halves, to send and receive from different tasks or threads.
    #[expect(clippy::type_complexity, reason = "the two halves, spelled out for the docs")]
    pub fn split(self) -> (TunnelSender<S::Out<E>>, TunnelReceiver<S::In<E>>) {
        (self.tx, self.rx)
    }

    /// Items this side may have in flight (sent, not taken by the other side yet).
    pub fn window(&self) -> usize {
        self.tx.window
    }

    /// Blocking twin of [`send`](Self::send), for threads outside the runtime.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn blocking_send(&mut self, item: S::Out<E>) -> Result<(), Failure> {
        self.tx.blocking_send(item)
    }

    /// Blocking twin of [`recv`](Self::recv), for threads outside the runtime.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn blocking_recv(&mut self) -> Result<Option<S::In<E>>, Failure> {
        self.rx.blocking_recv()
    }

    /// Items sent by this side and not yet taken by the other side's reader (see
    /// [`TunnelSender::buffered`]).
    pub fn buffered(&self) -> usize {
        self.tx.buffered()
    }

    /// The credits of the bridge that carries this end's items to another process, full at
    /// first; [`buffered`](Self::buffered) counts what they leave in flight.
    pub(crate) fn bridged(&mut self) -> Arc<std::sync::atomic::AtomicUsize> {
        let credit = Arc::new(std::sync::atomic::AtomicUsize::new(self.tx.window));
        self.tx.credit = Some(credit.clone());
        credit
    }
}

/// The sending half of a [`Tunnel`].
pub struct TunnelSender<T> {
    pub(crate) pipe: PipeTx<T>,
    window: usize,
    /// Across routers: the credits the bridge has left, to tell what is in flight.
    credit: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl<T> std::fmt::Debug for TunnelSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelSender").field("window", &self.window).finish_non_exhaustive()
    }
}

impl<T: Send + 'static> TunnelSender<T> {
    /// Sends one item, waiting while the window is full.
    ///
    /// # Errors
    /// As [`Tunnel::send`].
    pub async fn send(&mut self, item: T) -> Result<(), Failure> {
        self.pipe.send(item).await
    }

    /// Blocking twin of [`send`](Self::send).
    ///
    /// # Errors
    /// As [`Tunnel::send`].
    pub fn blocking_send(&mut self, item: T) -> Result<(), Failure> {
        block_on(self.pipe.send(item))
    }

    /// Ends this half: the other side sees the end of the stream.
    pub fn close(mut self) {
        self.finish(Ok(()));
    }

    /// Ends this half with an error for the other side.
    pub fn fail(mut self, failure: impl Into<Failure>) {
        self.finish(Err(failure.into()));
    }

    fn finish(&mut self, end: Result<(), Failure>) {
        self.pipe.finish(end);
    }

    /// Items sent and not yet taken by the other side's reader: at most the window in one
    /// router; across routers, at most the window queued here plus the window in flight.
    pub fn buffered(&self) -> usize {
        let in_flight = self.credit.as_ref().map_or(0, |c| {
            self.window.saturating_sub(c.load(std::sync::atomic::Ordering::Relaxed))
        });
        self.pipe.queued() + in_flight
    }

    /// The most items ever queued on this side at once (never above the window).
    pub fn peak(&self) -> usize {
        self.pipe.peak()
    }
}

/// The receiving half of a [`Tunnel`].
pub struct TunnelReceiver<T> {
    pub(crate) pipe: PipeRx<T>,
}

impl<T> std::fmt::Debug for TunnelReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelReceiver").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> TunnelReceiver<T> {
    /// The next item; `Ok(None)` at the end of the stream.
    ///
    /// # Errors
    /// As [`Tunnel::recv`].
    pub async fn recv(&mut self) -> Result<Option<T>, Failure> {
        self.pipe.recv().await
    }

    /// Blocking twin of [`recv`](Self::recv).
    ///
    /// # Errors
    /// As [`Tunnel::recv`].
    pub fn blocking_recv(&mut self) -> Result<Option<T>, Failure> {
        block_on(self.pipe.recv())
    }
}

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
            let route = ctx.shared().route(std::any::TypeId::of::<E>());
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

/// A run of bytes as a tunnel item: serialized as one block (a plain `Vec<u8>` is serialized
/// byte by byte, which costs far more across routers).
///
/// ```ignore
/// #[event(tunnel, send = Chunk, receive = Chunk)]
/// pub struct Upper;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Chunk(pub Vec<u8>);

impl Chunk {
    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for Chunk {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Chunk {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Serialize for Chunk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Chunk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Chunk;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Chunk, E> {
                Ok(Chunk(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Chunk, E> {
                Ok(Chunk(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Chunk, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    bytes.push(b);
                }
                Ok(Chunk(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}
