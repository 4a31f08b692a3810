//! Tunnels: confirmed two-way streams of typed items between two parties.
//!
//! A tunnel event is declared with `#[event(tunnel, send = T, receive = U)]`. One party opens
//! it with [`Ctx::open`](crate::Ctx::open); the event goes to the one manager that accepts it
//! (this router's, else another router's through the switch), whose handler takes an
//! [`Opening<E>`] and either [accepts](Opening::accept) it or [rejects](Opening::reject) it.
//! Once accepted, both parties hold a [`Tunnel`]: the opener's end sends `T` and receives `U`,
//! the acceptor's end (`Tunnel<E, Acceptor>`) the other way round.
//!
//! # Examples
//!
//! ```rust,standalone_crate
//! use edri::prelude::*;
//! use edri::Chunk;
//!
//! #[event(tunnel, send = Chunk, receive = Chunk)]
//! pub struct Upper;
//!
//! #[derive(Default)]
//! pub struct Converter;
//!
//! #[manager]
//! impl Converter {
//!     #[solve]
//!     fn upper(&mut self, _ev: &Upper, opening: Opening<Upper>, ctx: &Ctx) {
//!         let Ok(mut end) = opening.accept() else { return };
//!         ctx.spawn(async move {
//!             while let Some(chunk) = end.recv().await? {
//!                 end.send(Chunk(chunk.to_ascii_uppercase())).await?;
//!             }
//!             end.close();
//!             Ok::<_, Failure>(())
//!         });
//!     }
//! }
//!
//! #[edri::main(tracing = false)]
//! async fn main() -> edri::Result<()> {
//!     let running = Edri::builder().start().await?;
//!     let mut tunnel = running.ctx().open(Upper).await?;
//!     tunnel.send(Chunk(b"abc".to_vec())).await?;
//!     tunnel.close();
//!     let mut out = Vec::new();
//!     while let Some(chunk) = tunnel.recv().await? {
//!         out.extend_from_slice(&chunk);
//!     }
//!     assert_eq!(out, b"ABC");
//!     running.shutdown().await
//! }
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

mod chunk;
mod open;
pub(crate) mod pipe;
#[doc(hidden)]
pub(crate) mod remote;

pub use chunk::Chunk;
pub use open::{Open, Opening};
pub(crate) use open::{Verdict, offer, pair, verdict};

use crate::Failure;
use crate::event::TunnelEvent;
use pipe::{PipeRx, PipeTx, block_on};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

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
///
/// # Examples
///
/// ```
/// use edri::{Opener, Tunnel};
/// # use edri::prelude::*;
/// # #[event(tunnel, send = String, receive = u64)] pub struct Count;
/// // The opener of `Count` sends `String`s and receives `u64`s:
/// async fn ask(end: &mut Tunnel<Count, Opener>) -> Result<Option<u64>, Failure> {
///     end.send("how many?".to_owned()).await?;
///     end.recv().await
/// }
/// ```
#[derive(Debug)]
pub enum Opener {}

/// The side that accepted the [`Opening`]: sends `E::Receive`, receives `E::Send`.
///
/// # Examples
///
/// ```
/// use edri::{Acceptor, Tunnel};
/// # use edri::prelude::*;
/// # #[event(tunnel, send = String, receive = u64)] pub struct Count;
/// // The acceptor of `Count` receives `String`s and sends `u64`s:
/// async fn answer(end: &mut Tunnel<Count, Acceptor>) -> Result<(), Failure> {
///     while let Some(question) = end.recv().await? {
///         end.send(question.len() as u64).await?;
///     }
///     Ok(())
/// }
/// ```
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

/// One end of an open tunnel of event `E`, held by side `S`.
///
/// `Tunnel<E>` is the opener's end; the acceptor's is `Tunnel<E, Acceptor>`. Move it into a
/// task ([`Ctx::spawn`](crate::Ctx::spawn)) or a thread (it has blocking twins of its
/// methods); [`split`](Self::split) it to send and receive from different places.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::{Acceptor, Chunk, Tunnel};
/// # #[event(tunnel, send = Chunk, receive = Chunk)] pub struct Upper;
/// // The acceptor's end on a thread, with the blocking twins:
/// fn serve(mut end: Tunnel<Upper, Acceptor>) {
///     std::thread::spawn(move || -> Result<(), Failure> {
///         while let Some(mut chunk) = end.blocking_recv()? {
///             chunk.make_ascii_uppercase();
///             end.blocking_send(chunk)?;
///         }
///         end.close();
///         Ok(())
///     });
/// }
/// ```
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
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::{Chunk, Tunnel};
/// # #[event(tunnel, send = Chunk, receive = Chunk)] pub struct Upper;
/// # async fn f(ctx: &Ctx, tunnel: Tunnel<Upper>) -> Result<(), Failure> {
/// let (mut tx, mut rx) = tunnel.split();
/// // Send from a task of its own while this one receives.
/// let sender = ctx.spawn(async move {
///     for part in [b"ab".to_vec(), b"cd".to_vec()] {
///         tx.send(Chunk(part)).await?;
///     }
///     tx.close();
///     Ok::<_, Failure>(())
/// });
/// while let Some(chunk) = rx.recv().await? {
///     println!("{} bytes", chunk.len());
/// }
/// # let _ = sender;
/// # Ok(()) }
/// ```
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

/// The receiving half of a [`Tunnel`]: see [`TunnelSender`] for both halves at work.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::{Chunk, TunnelReceiver};
/// async fn drain(mut rx: TunnelReceiver<Chunk>) -> Result<Vec<u8>, Failure> {
///     let mut all = Vec::new();
///     while let Some(chunk) = rx.recv().await? {
///         all.extend_from_slice(&chunk);
///     }
///     Ok(all)
/// }
/// ```
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
