//! The event traits that `#[event]` implements, and the static metadata it records.

use crate::Failure;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where something was declared in the user's source.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// # #[event(notification)] pub struct Tick;
/// let at = <Tick as Event>::META.location;
/// assert!(at.to_string().ends_with(&format!(":{}", at.line)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// `file!()` of the declaration.
    pub file: &'static str,
    /// `line!()` of the declaration.
    pub line: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The three kinds of event.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::EventKind;
///
/// #[event(request, name = "files.list", http = "GET /files/{dir}")]
/// pub struct ListDir { pub dir: String, #[response] pub names: Vec<String> }
///
/// let meta = <ListDir as Event>::META;
/// assert_eq!((meta.name, meta.kind), ("files.list", EventKind::Request));
/// assert_eq!(meta.fields.iter().map(|f| f.name).collect::<Vec<_>>(), ["dir", "names"]);
/// println!("declared at {}", meta.location); // file:line
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Delivered to every subscriber; no response.
    Notification,
    /// Delivered to exactly one responder; the response goes back to the requester.
    Request,
    /// A confirmed two-way stream.
    Tunnel,
}

impl EventKind {
    /// `"notification"`, `"request"` or `"tunnel"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "notification",
            Self::Request => "request",
            Self::Tunnel => "tunnel",
        }
    }
}

/// A REST route declared with `#[event(http = "METHOD /path/{param}")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRoute {
    /// The upper-case HTTP method.
    pub method: &'static str,
    /// The path template, with `{param}` placeholders.
    pub path: &'static str,
}

/// One field of an event struct, as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// The field's name (`"0"`, `"1"` for tuple structs).
    pub name: &'static str,
    /// The field's type as written.
    pub ty: &'static str,
    /// Whether the field was marked `#[response]` (moved into the response struct).
    pub response: bool,
}

/// Everything `#[event(...)]` knows about an event, fixed at compile time.
///
/// Read by the router (routing, duplicate names), the API broker (`http`, `ws`) and the
/// switch (`fingerprint`, `local`).
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::EventKind;
///
/// #[event(request, name = "files.list", http = "GET /files/{dir}")]
/// pub struct ListDir { pub dir: String, #[response] pub names: Vec<String> }
///
/// let meta = <ListDir as Event>::META;
/// assert_eq!((meta.name, meta.kind), ("files.list", EventKind::Request));
/// assert_eq!(meta.fields.iter().map(|f| f.name).collect::<Vec<_>>(), ["dir", "names"]);
/// println!("declared at {}", meta.location); // file:line
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    /// The wire/API name (`name = "..."`, default: the struct's identifier).
    pub name: &'static str,
    /// The Rust path of the type as written at the declaration (`module_path!()::Ident`).
    pub rust_name: &'static str,
    /// Notification, request or tunnel.
    pub kind: EventKind,
    /// Hash of name, kind, field names and field type tokens (and of the response and
    /// tunnel item types): two routers refuse to exchange an event whose fingerprints differ.
    pub fingerprint: u64,
    /// Default lane for priority queues; 0 is most urgent.
    pub priority: u8,
    /// Never leaves this router.
    pub local: bool,
    /// The REST route, if any.
    pub http: Option<HttpRoute>,
    /// Exposed on the WebSocket API.
    pub ws: bool,
    /// The response type as written (requests).
    pub response: Option<&'static str>,
    /// The item types as written (tunnels): `(send, receive)`.
    pub tunnel: Option<(&'static str, &'static str)>,
    /// The declared fields, in order.
    pub fields: &'static [FieldMeta],
    /// Where the struct was declared.
    pub location: Location,
}

/// A typed event: implemented by `#[event(...)]`, never by hand.
///
/// `Output` is what a handler answers with: the response of a request, `()` for a
/// notification or a tunnel.
///
/// # Examples
///
/// Code generic over events names these traits in its bounds:
///
/// ```
/// use edri::prelude::*;
/// use edri::EventKind;
///
/// /// Sends any request and logs its failure under the event's wire name.
/// async fn ask<E: Request>(ctx: &Ctx, event: E) -> Option<edri::Response<E>> {
///     ctx.request(event)
///         .await
///         .inspect_err(|failure| eprintln!("{}: {failure}", E::META.name))
///         .ok()
/// }
///
/// #[event(notification, name = "files.uploaded")]
/// pub struct Uploaded { pub path: String }
///
/// assert_eq!(<Uploaded as Event>::META.name, "files.uploaded");
/// assert_eq!(<Uploaded as Event>::META.kind, EventKind::Notification);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an edri event",
    label = "not an edri event",
    note = "declare it with `#[edri::event(notification)]`, `#[edri::event(request)]` or `#[edri::event(tunnel, send = .., receive = ..)]`"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The response of a request; `()` for notifications and tunnels.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The compile-time metadata.
    const META: &'static EventMeta;

    #[doc(hidden)]
    /// The kind as a type ([`kind`]).
    type Kind: kind::Kind;
}

/// The kinds of event as types, so that the type system can tell them apart (public as
/// `edri::kind`).
pub(crate) mod kind {
    /// A notification.
    #[derive(Debug)]
    pub enum Notification {}
    /// A request.
    #[derive(Debug)]
    pub enum Request {}
    /// A tunnel.
    #[derive(Debug)]
    pub enum Tunnel {}

    /// One of the kinds.
    pub trait Kind {}
    impl Kind for Notification {}
    impl Kind for Request {}
    impl Kind for Tunnel {}

    /// A kind a plain `#[solve]` handler can take (a tunnel's acceptor takes `Opening<E>`).
    #[diagnostic::on_unimplemented(
        message = "a tunnel event cannot be handled like a notification or a request",
        label = "this event is a tunnel",
        note = "a tunnel's acceptor takes the opening too: `fn accept(&mut self, ev: &E, opening: Opening<E>, ctx: &Ctx)`"
    )]
    pub trait Plain: Kind {
        /// Called by the `#[manager]` expansion as `<<E as Event>::Kind as Plain>::check()`,
        /// spanned over the handler's event type: the check is there, not in a bound.
        #[inline]
        fn check() {}
    }
    #[diagnostic::do_not_recommend]
    impl Plain for Notification {}
    #[diagnostic::do_not_recommend]
    impl Plain for Request {}
}

/// A request event: `ctx.request(ev)` answers with `Result<E::Output, Failure>`.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// /// Asks every router, keeps the answers that came.
/// async fn gather<E: Request>(ctx: &Ctx, event: E) -> Vec<E::Output> {
///     ctx.request_all(event).await.into_iter().filter_map(Result::ok).collect()
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an edri request",
    label = "not a request event",
    note = "requests are declared with `#[edri::event(request)]`; notifications are sent with `ctx.notify(..)`"
)]
pub trait Request: Event {}

/// A notification event: `ctx.notify(ev)` delivers it to every subscriber.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// /// Sends now if there is room, else waits in a task of its own.
/// fn send_soon<E: Notification>(ctx: &Ctx, event: E) {
///     if let Err(full) = ctx.try_notify(event) {
///         let ctx2 = ctx.clone();
///         ctx.spawn(async move { ctx2.notify(full.into_inner()).await });
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an edri notification",
    label = "not a notification event",
    note = "notifications are declared with `#[edri::event(notification)]`; requests are sent with `ctx.request(..)`"
)]
pub trait Notification: Event<Output = ()> {}

/// A tunnel event: a two-way stream of `Send` items (opener to acceptor) and `Receive` items
/// (acceptor to opener). Opened with [`Ctx::open`](crate::Ctx::open); see [`crate::tunnel`].
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::TunnelEvent;
/// /// Sends every item, then closes: for any tunnel.
/// async fn send_all<E: TunnelEvent>(
///     mut tunnel: Tunnel<E>,
///     items: Vec<E::Send>,
/// ) -> Result<(), Failure> {
///     for item in items {
///         tunnel.send(item).await?;
///     }
///     tunnel.close();
///     Ok(())
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an edri tunnel",
    label = "not a tunnel event",
    note = "tunnels are declared with `#[edri::event(tunnel, send = T, receive = U)]`; only a tunnel is opened with `ctx.open(..)`, and only a tunnel's acceptor takes an `Opening<E>`"
)]
pub trait TunnelEvent: Event<Output = ()> {
    /// Items the opener sends.
    type Send: Serialize + DeserializeOwned + Send + 'static;
    /// Items the opener receives.
    type Receive: Serialize + DeserializeOwned + Send + 'static;
}

/// The response type of a request: `Response<Divide>` is `DivideResponse`.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
///
/// #[event(request)]
/// pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
///
/// let half: Response<Divide> = DivideResponse { quotient: 0.5 };
/// # let _ = half;
/// ```
pub type Response<E> = <E as Event>::Output;

/// What a handler may return for an event whose output is `O`: `O` itself, or
/// `Result<O, X>` where `X: Into<Failure>`.
///
/// # Examples
///
/// Each of these fits a request whose response is `LoadResponse`:
///
/// ```
/// use edri::prelude::*;
/// # #[event(request)] pub struct Load { pub path: String, #[response] pub text: String }
/// # #[derive(Default)] pub struct A; #[derive(Default)] pub struct B; #[derive(Default)] pub struct C;
///
/// # #[manager] impl A {
/// #[solve]
/// fn load(&mut self, ev: &Load) -> LoadResponse { // always answers
///     LoadResponse { text: String::new() }
/// }
/// # }
/// # #[manager] impl B {
/// #[solve]
/// fn load(&mut self, ev: &Load) -> Result<LoadResponse, Failure> {
///     Err(Failure::not_found(format!("no {}", ev.path)))
/// }
/// # }
/// # #[manager] impl C {
/// #[solve]
/// fn load(&mut self, ev: &Load) -> Result<LoadResponse, std::io::Error> { // `?` on I/O
///     Ok(LoadResponse { text: std::fs::read_to_string(&ev.path)? })
/// }
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for this handler",
    label = "expected `{O}` or `Result<{O}, impl Into<edri::Failure>>`",
    note = "a request handler returns its response (or a `Result` of it); a notification handler or a tunnel acceptor returns `()` or `Result<(), impl Into<edri::Failure>>`"
)]
pub trait IntoReply<O> {
    /// The handler's error: `Infallible` for a handler that returns its value, `X` for one
    /// that returns `Result<O, X>`. The `#[manager]` expansion turns it into a [`Failure`]
    /// through [`IntoFailure`], so a wrong error type is its own error, on the return type.
    type Error;

    /// Splits the handler's value into its output or its error.
    fn into_result(self) -> Result<O, Self::Error>;
}

// `do_not_recommend` on both impls: a wrong return type is reported with the trait's own
// message alone, without rustc listing these impls.
#[diagnostic::do_not_recommend]
impl<O> IntoReply<O> for O {
    type Error = std::convert::Infallible;

    #[inline]
    fn into_result(self) -> Result<O, Self::Error> {
        Ok(self)
    }
}

#[diagnostic::do_not_recommend]
impl<O, X> IntoReply<O> for Result<O, X> {
    type Error = X;

    #[inline]
    fn into_result(self) -> Result<O, X> {
        self
    }
}

/// An error a handler may return: anything that converts into [`Failure`] (`Failure` itself,
/// `std::io::Error`, `Box<dyn Error + Send + Sync>`, `anyhow::Error` with the `anyhow`
/// feature, or a type of yours with `impl From<YourError> for Failure`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned as a handler's error",
    label = "no `From<{Self}>` for `edri::Failure`",
    note = "return `Failure` (e.g. `Failure::failed(e.to_string())`), or an error type with `impl From<YourError> for edri::Failure`"
)]
pub trait IntoFailure {
    /// The failure.
    fn into_failure(self) -> Failure;
}

#[diagnostic::do_not_recommend]
impl<X: Into<Failure>> IntoFailure for X {
    #[inline]
    fn into_failure(self) -> Failure {
        self.into()
    }
}

/// The fingerprint function `#[event]` uses at compile time (FNV-1a, 64 bits).
///
/// Exposed so that other implementations of the wire protocol can compute the same value.
pub const fn fingerprint(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// The fingerprint of `parts` joined: `fingerprint_parts(&["ab", "c"]) == fingerprint(b"abc")`.
///
/// `#[event]` gives each field its own part under the field's `#[cfg]`, so a field that a
/// build leaves out is left out of the fingerprint too.
pub const fn fingerprint_parts(parts: &[&str]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < parts.len() {
        hash = fnv1a(hash, parts[i].as_bytes());
        i += 1;
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, going on from `hash`.
const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, fingerprint_parts};

    /// An event without `cfg` on its fields keeps the fingerprint it had when the text was
    /// hashed in one piece, so routers of both builds still meet.
    #[test]
    fn parts_hash_as_their_concatenation() {
        let joined = "Divide|request|a:f64;b:f64;|quotient:f64;";
        let parts = ["Divide|request|", "a:f64;", "b:f64;", "|", "quotient:f64;"];
        assert_eq!(fingerprint_parts(&parts), fingerprint(joined.as_bytes()));
        assert_ne!(fingerprint_parts(&parts[..4]), fingerprint(joined.as_bytes()));
        assert_eq!(fingerprint_parts(&[]), fingerprint(b""));
    }
}
