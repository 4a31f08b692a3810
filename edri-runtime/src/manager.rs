//! Managers: the [`Manager`] trait `#[manager]` implements, the descriptors it submits to
//! `inventory`, and the task that serves one manager's mailbox.

use crate::Ctx;
use crate::envelope::Envelope;
use crate::event::{EventMeta, Location};
use crate::mailbox::Mailbox;
use std::any::TypeId;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tracing::Instrument as _;

/// A type whose impl block carries `#[manager]`: implemented by the macro, never by hand.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::{Manager, Mode};
/// # #[event(request)] pub struct Resize { pub width: u32, #[response] pub bytes: Vec<u8> }
///
/// #[derive(Default)]
/// pub struct Images;
///
/// #[manager(name = "images", capacity = 64)]
/// impl Images {
///     #[solve(thread, limit = 2)]
///     fn resize(ev: Resize) -> ResizeResponse {
///         ResizeResponse { bytes: vec![0; ev.width as usize] }
///     }
/// }
///
/// let descriptor = <Images as Manager>::DESCRIPTOR;
/// assert_eq!(descriptor.name, "images");
/// assert_eq!(descriptor.handlers[0].mode, Mode::Thread);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an edri manager",
    label = "not an edri manager",
    note = "add `#[edri::manager]` to an impl block of `{Self}` whose methods carry `#[solve]`"
)]
pub trait Manager: Send + Sized + 'static {
    /// The descriptor `#[manager]` generated.
    const DESCRIPTOR: &'static ManagerDescriptor;

    /// Runs the handler the envelope is addressed to.
    #[doc(hidden)]
    fn dispatch<'a>(
        &'a mut self,
        envelope: Envelope,
        ctx: &'a Ctx,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// How a handler runs (`#[solve]`, `#[solve(thread)]`, `#[solve(process)]`).
///
/// # Examples
///
/// ```
/// use edri::Mode;
/// fn thread_handlers(running: &edri::Running) -> usize {
///     let topology = running.topology();
///     let handlers = topology.managers.iter().flat_map(|m| &m.handlers);
///     handlers.filter(|h| h.mode == Mode::Thread.as_str()).count()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// On the manager's own task, one event at a time.
    Inline,
    /// On a pool of threads of its own, at most `limit` at once.
    Thread,
    /// In a child process of this binary, at most `limit` at once.
    Process,
}

impl Mode {
    /// `"inline"`, `"thread"` or `"process"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Thread => "thread",
            Self::Process => "process",
        }
    }
}

/// The mailbox discipline (`#[manager(queue = fifo | priority)]`).
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::{Manager, QueueKind};
///
/// #[event(notification, priority = 5)] // its default lane; 0 is the most urgent
/// pub struct Report { pub text: String }
///
/// #[derive(Default)]
/// pub struct Desk;
///
/// #[manager(queue = priority)]
/// impl Desk {
///     #[solve]
///     fn report(&mut self, ev: &Report) { println!("{}", ev.text); }
/// }
///
/// assert_eq!(<Desk as Manager>::DESCRIPTOR.options.queue, QueueKind::Priority);
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// ctx.notify_priority(Report { text: "fire!".into() }, 0).await?; // ahead of lane 5
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// First in, first out.
    Fifo,
    /// Lower priority lanes first, FIFO within a lane.
    Priority,
}

/// Options given to `#[manager(...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagerOptions {
    /// The mailbox discipline.
    pub queue: QueueKind,
    /// Mailbox capacity; `None` takes the builder's default (1024).
    pub capacity: Option<usize>,
    /// Never started automatically, only through `Edri::builder().manager(..)`.
    pub manual: bool,
}

/// One `#[solve]` method.
#[derive(Debug, Clone, Copy)]
pub struct HandlerDescriptor {
    /// The handled event's metadata.
    pub event: &'static EventMeta,
    /// The handled event's type id.
    pub event_type: fn() -> TypeId,
    /// The method's name.
    pub method: &'static str,
    /// How it runs.
    pub mode: Mode,
    /// At most this many at once (thread and process modes).
    pub limit: usize,
    /// Where the method is declared.
    pub location: Location,
    /// The worker-side entry of a process handler: decodes the event, runs the method and
    /// encodes its output.
    pub process: Option<ProcessFn>,
}

/// The worker-side entry of a process handler.
pub type ProcessFn = fn(&[u8], Ctx) -> Result<Vec<u8>, crate::Failure>;

/// Everything `#[manager]` knows about one manager type.
#[derive(Debug)]
pub struct ManagerDescriptor {
    /// The manager's name (`name = ".."`, default: the type's identifier).
    pub name: &'static str,
    /// The type as written at the impl block.
    pub rust_name: &'static str,
    /// Where the `#[manager]` impl block is.
    pub location: Location,
    /// The options.
    pub options: ManagerOptions,
    /// The handlers, in declaration order; envelopes address them by index.
    pub handlers: &'static [HandlerDescriptor],
    /// The manager type's id.
    pub type_id: fn() -> TypeId,
    /// A default instance, when the type implements `Default`.
    pub make_default: fn() -> Option<Box<dyn ErasedManager>>,
}

/// The counters of one running manager ([`Running::vitals`](crate::Running::vitals), `HealthCheck`).
///
/// # Examples
///
/// ```
/// fn backlog(running: &edri::Running) -> Vec<(String, usize)> {
///     running.vitals().into_iter().filter(|v| v.queued > 0).map(|v| (v.name, v.queued)).collect()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ManagerVitals {
    /// The manager's name.
    pub name: String,
    /// Events waiting in its mailbox channel.
    pub queued: usize,
    /// Its mailbox capacity.
    pub capacity: usize,
    /// Events it has handled (including failed and crashed ones).
    pub processed: u64,
    /// Handlers that returned an error.
    pub failed: u64,
    /// Handlers that panicked (or whose worker died).
    pub crashed: u64,
    /// Events dropped because the router stopped before it could handle them (the grace
    /// period of [`Running::shutdown`](crate::Running::shutdown) ran out): left in its mailbox, or whose handler was
    /// interrupted.
    pub dropped: u64,
    /// Whether it is handling an event right now.
    pub busy: bool,
    /// Live worker processes of its process handlers.
    pub workers: usize,
    /// Of those, the ones waiting for a call.
    pub workers_idle: usize,
    /// Calls of its thread handlers refused with `Unavailable` because no thread could be
    /// started (the system's thread limit): also counted in `failed`.
    #[serde(default)]
    pub threads_refused: u64,
}

/// Counters of one manager. Only the manager's own task writes `processed` and `busy`.
#[derive(Debug, Default)]
pub(crate) struct ManagerStats {
    processed: AtomicU64,
    busy: AtomicBool,
    failed: AtomicU64,
    crashed: AtomicU64,
    dropped: AtomicU64,
}

impl ManagerStats {
    pub(crate) fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn dropped_count(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn crashed(&self) {
        self.crashed.fetch_add(1, Ordering::Relaxed);
    }
    /// Marks the start of a delivery (single writer: plain stores, no read-modify-write).
    #[inline]
    pub(crate) fn begin(&self) {
        self.busy.store(true, Ordering::Release);
    }
    /// Marks the end of a delivery.
    #[inline]
    pub(crate) fn end(&self) {
        self.processed.store(self.processed.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.busy.store(false, Ordering::Release);
    }
    pub(crate) fn processed(&self) -> u64 {
        self.processed.load(Ordering::Acquire)
    }
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
    pub(crate) fn failed_count(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    pub(crate) fn crashed_count(&self) -> u64 {
        self.crashed.load(Ordering::Relaxed)
    }
}

/// Counters of code running outside any manager (a `Ctx` from `Running::ctx()`).
pub(crate) static OUTSIDE: ManagerStats = ManagerStats {
    processed: AtomicU64::new(0),
    busy: AtomicBool::new(false),
    failed: AtomicU64::new(0),
    crashed: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
};

/// A manager instance with its type erased, ready to start.
pub trait ErasedManager: Send + 'static {
    /// The descriptor of the instance's type.
    fn descriptor(&self) -> &'static ManagerDescriptor;
    /// Starts the task serving `mailbox`.
    #[doc(hidden)]
    fn spawn(
        self: Box<Self>,
        mailbox: crate::mailbox::MailboxRx,
        ctx: Ctx,
        runtime: &tokio::runtime::Handle,
    ) -> tokio::task::JoinHandle<()>;
}

impl<M: Manager> ErasedManager for M {
    fn descriptor(&self) -> &'static ManagerDescriptor {
        M::DESCRIPTOR
    }

    fn spawn(
        self: Box<Self>,
        mailbox: crate::mailbox::MailboxRx,
        ctx: Ctx,
        runtime: &tokio::runtime::Handle,
    ) -> tokio::task::JoinHandle<()> {
        runtime.spawn(serve(*self, M::DESCRIPTOR, mailbox, ctx))
    }
}

/// What the serve loop runs: every `#[manager]` type, and managers whose handlers are known
/// only at start (the API broker's WebSocket bridge).
pub(crate) trait Serve: Send + 'static {
    /// Runs the handler the envelope is addressed to.
    fn dispatch<'a>(
        &'a mut self,
        envelope: Envelope,
        ctx: &'a Ctx,
    ) -> impl Future<Output = ()> + Send + 'a;
}

impl<M: Manager> Serve for M {
    #[inline]
    fn dispatch<'a>(
        &'a mut self,
        envelope: Envelope,
        ctx: &'a Ctx,
    ) -> impl Future<Output = ()> + Send + 'a {
        Manager::dispatch(self, envelope, ctx)
    }
}

/// Serves one manager's mailbox until a stop envelope or until every sender is gone: the
/// handlers of `descriptor`, one event at a time, panics caught, leftovers counted.
pub(crate) async fn serve<M: Serve>(
    mut manager: M,
    descriptor: &'static ManagerDescriptor,
    channel: crate::mailbox::MailboxRx,
    ctx: Ctx,
) {
    let shared = ctx.shared().clone();
    let stats = shared.stats(ctx.origin());
    let mailbox = Mailbox::new(channel, descriptor.options.queue == QueueKind::Priority);
    let mut mailbox = Leftovers { mailbox, stats, manager: descriptor.name };
    let timed = shared.metrics;
    while let Some(mut envelope) = mailbox.mailbox.next().await {
        if envelope.is_stop() {
            // Whatever was sent before the mailbox closes is still handled; later senders get
            // `Unavailable`.
            mailbox.mailbox.close();
            continue;
        }
        let h = descriptor.handlers.get(usize::from(envelope.handler));
        let from = envelope.take_link();
        let span = tracing::debug_span!(
            parent: from.as_ref().and_then(|l| l.span.id()),
            "edri.deliver",
            manager = descriptor.name,
            event = h.map_or("?", |h| h.event.name),
            method = h.map_or("?", |h| h.method),
            mode = h.map_or("?", |h| h.mode.as_str()),
            seq = stats.processed(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        let since = if timed && h.is_some_and(|h| h.mode == Mode::Inline) {
            Some(std::time::Instant::now())
        } else {
            None
        };
        let handler = envelope.handler;
        stats.begin();
        let delivery = CatchUnwind { inner: Serve::dispatch(&mut manager, envelope, &ctx) };
        let outcome = if span.is_disabled() {
            // Not traced here: a link that came with the event goes on with the handler's sends.
            match from {
                None => delivery.await,
                Some(from) => crate::trace::scope(Some(from), delivery).await,
            }
        } else {
            let link = crate::trace::handling(&span, from.as_ref());
            crate::trace::scope(Some(link), delivery).instrument(span).await
        };
        shared.record_call(ctx.origin(), handler, since);
        stats.end();
        if let Err(panic) = outcome {
            let method = h.map_or("?", |h| h.method);
            let text = panic_message(&*panic);
            tracing::error!(
                manager = descriptor.name,
                event = h.map_or("?", |h| h.event.name),
                method,
                panic = text,
                "handler panicked; the requester gets `Crashed`"
            );
            // The handler's reply was unwound on this thread, in the poll that caught it.
            crate::envelope::answer_panicked(&panicked(descriptor.name, method, text));
            stats.crashed();
        }
    }
    tracing::debug!(manager = descriptor.name, "manager stopped");
}

/// A manager's mailbox that, dropped with events in it or in the middle of a handler (the
/// manager's task aborted when the grace period ran out), closes, counts them and says so.
struct Leftovers<'a> {
    mailbox: Mailbox,
    stats: &'a ManagerStats,
    manager: &'static str,
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        // Dropped while busy: the task was aborted in the middle of a handler.
        let interrupted = self.stats.is_busy();
        let dropped = self.mailbox.discard() + usize::from(interrupted);
        if dropped > 0 {
            self.stats.dropped(dropped as u64);
            tracing::warn!(
                manager = self.manager,
                dropped,
                interrupted,
                "manager stopped before handling every event it was sent: they were dropped"
            );
        }
    }
}

/// The failure a requester gets when handler `manager::method` panicked with `text`.
pub(crate) fn panicked(manager: &str, method: &str, text: &str) -> crate::Failure {
    crate::Failure::crashed(format!("`{manager}::{method}` panicked: {text}"))
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

pin_project_lite::pin_project! {
    /// Polls a future, turning a panic during a poll into an error.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        pub(crate) inner: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
