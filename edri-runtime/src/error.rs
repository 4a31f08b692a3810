//! Errors of starting and running a router.

use crate::event::Location;

/// `edri::Result<T>`: the result of `main` and of starting a router.
///
/// # Examples
///
/// ```no_run
/// # use edri::prelude::*;
/// # #[event(request)] pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     let running = Edri::builder().start().await?; // a `StartError`
///     let half = running.ctx().request(Divide { a: 1.0, b: 2.0 }).await?; // a `Failure`
///     println!("{}", half.quotient);
///     running.shutdown().await
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Anything that can stop an EDRI application.
///
/// Its `Debug` is its `Display` text, so that a `main` returning
/// [`Result`] prints `Error: no managers to start (…)` rather than the variant's fields.
///
/// # Examples
///
/// ```no_run
/// use edri::{Edri, Error, StartError};
///
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     match Edri::builder().start().await {
///         Ok(running) => running.shutdown().await,
///         Err(Error::Start(StartError::NoManagers { registered })) => {
///             eprintln!("nothing to run ({registered} managers in this binary)");
///             Ok(())
///         }
///         Err(e) => Err(e), // `?` works too: every failure converts into `Error`
///     }
/// }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// An I/O error (signals, files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A request, a notification or a tunnel failed (`?` on their results in `main`).
    #[error(transparent)]
    Failure(#[from] crate::Failure),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Why a router refused to start. Every message names the source locations involved.
///
/// # Examples
///
/// ```
/// # async fn f() {
/// if let Err(edri::Error::Start(why)) = edri::Edri::builder().start().await {
///     eprintln!("cannot start: {why}"); // e.g. two responders for one request, both located
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Nothing to run.
    #[error(
        "no managers to start ({registered} registered in this binary). Managers are registered by \
         `#[edri::manager]`; a library crate whose managers the binary never names is dropped by the \
         linker: add `use that_crate as _;` (or `edri::link!(that_crate);`) to the binary"
    )]
    NoManagers {
        /// How many `#[manager]` impls the binary has.
        registered: usize,
    },
    /// Two managers answer one request (or accept one tunnel).
    #[error(
        "`{event}` has two handlers: `{first}` ({first_at}) and `{second}` ({second_at}); a \
         request is answered, and a tunnel accepted, by exactly one manager per router"
    )]
    DuplicateResponder {
        /// The event's name.
        event: &'static str,
        /// `Manager::method` of the first.
        first: String,
        /// Where the first is declared.
        first_at: Location,
        /// `Manager::method` of the second.
        second: String,
        /// Where the second is declared.
        second_at: Location,
    },
    /// Two event types share a name.
    #[error(
        "two events are named `{name}`: `{first}` ({first_at}) and `{second}` ({second_at}); \
         rename one with `#[event(name = \"...\")]`"
    )]
    DuplicateEventName {
        /// The shared name.
        name: &'static str,
        /// The first type.
        first: &'static str,
        /// Where it is declared.
        first_at: Location,
        /// The second type.
        second: &'static str,
        /// Where it is declared.
        second_at: Location,
    },
    /// Two manager types share a name.
    #[error(
        "two managers are named `{name}` ({first_at} and {second_at}); rename one with \
         `#[manager(name = \"...\")]`"
    )]
    DuplicateManagerName {
        /// The shared name.
        name: &'static str,
        /// Where the first is declared.
        first_at: Location,
        /// Where the second is declared.
        second_at: Location,
    },
    /// A registered manager has no `Default` and was given no instance.
    #[error(
        "manager `{manager}` ({at}) does not implement `Default`: give it an instance with \
         `Edri::builder().manager(..)`, leave it out with `.without::<T>()`, or mark it \
         `#[manager(manual)]`"
    )]
    NoInstance {
        /// The manager's name.
        manager: &'static str,
        /// Where its `#[manager]` impl is.
        at: Location,
    },
    /// This process was started as a process-mode worker, but its `main` started a router
    /// instead of serving as a worker.
    #[error(
        "this process was started as an edri worker ({env} is set) but its `main` starts a router \
         instead of serving calls: make `main` `#[edri::main]`, or call `edri::serve_if_worker()` first"
    )]
    StartedAsWorker {
        /// The marker variable.
        env: &'static str,
    },
    /// A job given to `Edri::builder().job(..)` cannot run.
    #[error("{failure}")]
    InvalidJob {
        /// What is wrong with it.
        failure: crate::Failure,
    },
    /// More of something than the router can address.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// The API broker cannot listen on its address.
    #[error("the API broker cannot listen on `{addr}`: {error}")]
    ApiBind {
        /// The address given to `.api(..)`.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// The API routes declared by `#[event(http = ..)]` cannot be served together.
    #[error("{0}")]
    ApiRoutes(String),
    /// `.switch(..)` without a secret.
    #[cfg(feature = "switch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
    #[error(
        "joining a switch needs its shared secret: give it with `Switch::new(addr).secret(..)` \
         or in the `{env}` environment variable"
    )]
    SwitchSecret {
        /// The variable read.
        env: &'static str,
    },
    /// The switch refused this router: wrong secret, another protocol version, or an event
    /// defined differently on another router.
    #[cfg(feature = "switch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
    #[error("the switch at `{addr}` refused this router: {reason}")]
    SwitchRefused {
        /// The switch's address.
        addr: String,
        /// Why (the switch's words, naming the event for a catalog mismatch).
        reason: String,
    },
    /// NATS did not take this router (unreachable, authentication failed, JetStream off), or
    /// an event is defined differently on another router joined through it.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[error("NATS at `{servers}` refused this router: {reason}")]
    Nats {
        /// The servers given to `Nats`.
        servers: String,
        /// Why (naming the event for a catalog mismatch).
        reason: String,
    },
    /// `start` was called outside a tokio runtime.
    #[error("`Edri::builder().start()` must run inside a tokio runtime (use `#[edri::main]`)")]
    NoRuntime,
}

/// Why [`Ctx::try_notify`](crate::Ctx::try_notify) did not deliver; the event comes back.
///
/// `Debug` does not require the event to be `Debug`: it prints the variant and the type.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::TryNotifyError;
/// # #[event(notification)] pub struct Sample { pub value: f64 }
/// /// Sends now, or keeps the sample for the next try.
/// fn offer(ctx: &Ctx, sample: Sample, backlog: &mut Vec<Sample>) {
///     if let Err(e @ TryNotifyError::Full(_)) = ctx.try_notify(sample) {
///         backlog.push(e.into_inner());
///     }
/// }
/// ```
pub enum TryNotifyError<E> {
    /// A subscriber's mailbox (or, with a switch, the buffer for other routers) is full;
    /// nobody received the event.
    Full(E),
    /// The router is stopping; nobody received the event.
    Closed(E),
}

impl<E> TryNotifyError<E> {
    /// The event that was not delivered.
    pub fn into_inner(self) -> E {
        match self {
            Self::Full(e) | Self::Closed(e) => e,
        }
    }
}

impl<E> std::fmt::Debug for TryNotifyError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (variant, _) = match self {
            Self::Full(e) => ("Full", e),
            Self::Closed(e) => ("Closed", e),
        };
        write!(f, "{variant}(<{}>)", std::any::type_name::<E>())
    }
}

impl<E> std::fmt::Display for TryNotifyError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(_) => {
                f.write_str("a subscriber's mailbox is full; nobody received the event")
            }
            Self::Closed(_) => f.write_str("the router is stopping; nobody received the event"),
        }
    }
}

impl<E> std::error::Error for TryNotifyError<E> {}
