//! [`Caller`]: who sent the API request an event came from, as the broker authenticated it.
//!
//! The API broker knows its caller by the bearer token it presented
//! ([`Api::token_named`](crate::api::Api::token_named)). It sends each event of that request
//! with the caller's name attached, and the router keeps it *current* while the handler runs,
//! the way it keeps a trace link ([`crate::trace`]): during each poll of an async handler, for
//! the whole call of a thread handler, in tasks the handler starts with
//! [`Ctx::spawn`](crate::Ctx::spawn), and on the events the handler sends in turn. A handler
//! asks with [`Ctx::caller`](crate::Ctx::caller).
//!
//! It stays inside the process: a process-mode handler, and a handler on another router (the
//! switch, NATS), see `None`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The authenticated caller of an API request: the name of the token it presented.
///
/// Cheap to clone. In a handler, [`Ctx::caller`](crate::Ctx::caller) gives it; in a route of
/// your own served by the broker ([`Api::merge`](crate::api::Api::merge)), it is an axum
/// extractor (`caller: Caller`, or `Option<Caller>` where no token is configured).
///
/// ```
/// use edri::Caller;
/// let alice = Caller::new("alice");
/// assert_eq!(alice.name(), "alice");
/// assert_eq!(alice.to_string(), "alice");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Caller(Arc<str>);

impl Caller {
    /// A caller named `name`: the broker makes them; tests and code that sends on someone's
    /// behalf ([`Caller::scope`]) may too.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name of the token the caller presented (`"default"` for [`Api::token`]).
    ///
    /// [`Api::token`]: crate::api::Api::token
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The caller of the handler (or API request) running on this thread, if any: what
    /// [`Ctx::caller`](crate::Ctx::caller) answers.
    pub fn current() -> Option<Self> {
        crate::trace::current_caller()
    }

    /// Runs `future` as this caller: the events it sends carry the caller to their handlers.
    /// The broker does this around every authenticated request, your merged routes included.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use edri::Caller;
    /// let name = Caller::new("cron").scope(async { Caller::current().map(|c| c.to_string()) });
    /// assert_eq!(name.await.as_deref(), Some("cron"));
    /// assert_eq!(Caller::current(), None);
    /// # }
    /// ```
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        crate::trace::scope(Some(crate::trace::Link::caller(self)), future)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Caller").field(&&*self.0).finish()
    }
}
