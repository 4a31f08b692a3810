//! [`Failure`]: the error half of every request.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Why a request did not produce a response.
///
/// Statuses map one to one onto HTTP status codes in the API broker.
///
/// # Examples
///
/// ```
/// use edri::{Failure, Status};
/// fn retryable(failure: &Failure) -> bool {
///     matches!(failure.status(), Status::Unavailable | Status::Timeout)
/// }
/// assert!(retryable(&Failure::new(Status::Timeout, "no answer in 30 s")));
/// assert_eq!(Status::NotFound.as_str(), "not_found");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// The request was malformed or its content not acceptable (HTTP 400).
    Invalid,
    /// The caller is not authenticated (HTTP 401).
    Unauthorized,
    /// The caller may not do this (HTTP 403).
    Forbidden,
    /// What the request names does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the current state (HTTP 409).
    Conflict,
    /// The handler failed (HTTP 500).
    Failed,
    /// Nobody can answer: no responder, or the router is stopping (HTTP 503).
    Unavailable,
    /// No answer within the deadline (HTTP 504).
    Timeout,
    /// The handler panicked or its worker died (HTTP 500).
    Crashed,
    /// The route exists, but not for this HTTP method (HTTP 405).
    MethodNotAllowed,
    /// The request, or one message of it, is over the size limit (HTTP 413).
    TooLarge,
}

impl Status {
    /// The lower-case name used in logs and on the wire (`"not_found"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Failed => "failed",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Crashed => "crashed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that did not succeed: a [`Status`] and a message for humans.
///
/// Handlers return `Err(Failure::…)`; any error type that converts into `Failure` works too
/// (`Result<Resp, X>` where `X: Into<Failure>`).
///
/// ```
/// use edri::{Failure, Status};
/// let f = Failure::not_found("no such file: a.txt");
/// assert_eq!(f.status(), Status::NotFound);
/// assert_eq!(f.to_string(), "not_found: no such file: a.txt");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    status: Status,
    message: Cow<'static, str>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $fn:ident => $status:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $fn(message: impl Into<Cow<'static, str>>) -> Self {
                Self::new(Status::$status, message)
            }
        )*
    };
}

impl Failure {
    /// A failure with any status.
    pub fn new(status: Status, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into() }
    }

    constructors! {
        /// [`Status::Invalid`].
        invalid => Invalid,
        /// [`Status::Unauthorized`].
        unauthorized => Unauthorized,
        /// [`Status::Forbidden`].
        forbidden => Forbidden,
        /// [`Status::NotFound`].
        not_found => NotFound,
        /// [`Status::Conflict`].
        conflict => Conflict,
        /// [`Status::Failed`].
        failed => Failed,
        /// [`Status::Unavailable`].
        unavailable => Unavailable,
        /// [`Status::Timeout`].
        timeout => Timeout,
        /// [`Status::Crashed`].
        crashed => Crashed,
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::failed(message)
    }
}

impl From<&'static str> for Failure {
    fn from(message: &'static str) -> Self {
        Self::failed(message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self::failed(err.to_string())
    }
}

/// A boxed error is a [`Status::Failed`] with the error's text: `?` works on
/// `Result<_, Box<dyn Error + Send + Sync>>` in a handler.
///
/// ```
/// use edri::{Failure, Status};
/// fn parse(text: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     Ok(text.parse()?)
/// }
/// fn handler(text: &str) -> Result<u32, Failure> {
///     Ok(parse(text)? + 1)
/// }
/// let failure = handler("x").unwrap_err();
/// assert_eq!(failure.status(), Status::Failed);
/// assert_eq!(failure.message(), "invalid digit found in string");
/// ```
impl From<Box<dyn std::error::Error + Send + Sync>> for Failure {
    fn from(err: Box<dyn std::error::Error + Send + Sync>) -> Self {
        // A `Failure` boxed on the way keeps its status.
        match err.downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(err) => Self::failed(err.to_string()),
        }
    }
}

/// A boxed error that is not `Send` is a [`Status::Failed`] with the error's text.
impl From<Box<dyn std::error::Error>> for Failure {
    fn from(err: Box<dyn std::error::Error>) -> Self {
        match err.downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(err) => Self::failed(err.to_string()),
        }
    }
}

/// With the `anyhow` feature: an [`anyhow::Error`] is a [`Status::Failed`] whose message is
/// the error with its causes (`"reading config: No such file or directory (os error 2)"`),
/// so `?` works on `anyhow::Result` in a handler. A [`Failure`] carried by the `anyhow::Error`
/// keeps its status.
///
/// ```
/// # #[cfg(feature = "anyhow")] {
/// use anyhow::Context as _;
/// use edri::{Failure, Status};
/// fn load() -> anyhow::Result<String> {
///     Ok(std::fs::read_to_string("/no/such/file").context("reading config")?)
/// }
/// fn handler() -> Result<String, Failure> {
///     Ok(load()?)
/// }
/// let failure = handler().unwrap_err();
/// assert_eq!(failure.status(), Status::Failed);
/// assert!(failure.message().starts_with("reading config: "), "{failure}");
/// # }
/// ```
#[cfg(feature = "anyhow")]
#[cfg_attr(docsrs, doc(cfg(feature = "anyhow")))]
impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<Failure>() {
            Ok(failure) => failure,
            Err(err) => Self::failed(format!("{err:#}")),
        }
    }
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
