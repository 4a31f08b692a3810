//! # EDRI — Event Driven Routing Infrastructure
//!
//! Build parallel and distributed applications out of **typed events** and **managers** that
//! handle them. Annotate structs with [`#[event]`](event) and impl blocks with
//! [`#[manager]`](manager) / [`#[solve]`](solve); the macros generate the event impls, the
//! response structs, the registrations and the dispatch code, and the router started by
//! [`Edri::builder()`] routes events by type. A handler whose signature does not fit its event
//! does not compile, with the error on your own code.
//!
//! ```no_run
//! use edri::prelude::*;
//!
//! #[event(request)]
//! #[derive(Debug, Clone)]
//! pub struct Divide {
//!     pub a: f64,
//!     pub b: f64,
//!     #[response]
//!     pub quotient: f64,
//! }
//!
//! #[derive(Default)]
//! pub struct Calc;
//!
//! #[manager]
//! impl Calc {
//!     #[solve]
//!     fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> {
//!         if ev.b == 0.0 {
//!             return Err(Failure::invalid("division by zero"));
//!         }
//!         Ok(DivideResponse { quotient: ev.a / ev.b })
//!     }
//! }
//!
//! #[edri::main]
//! async fn main() -> edri::Result<()> {
//!     let running = Edri::builder().start().await?;
//!     let answer = running.ctx().request(Divide { a: 1.0, b: 4.0 }).await;
//!     assert_eq!(answer.map(|r| r.quotient), Ok(0.25));
//!     running.shutdown().await
//! }
//! ```
//!
//! The README has a tour; each macro's page shows what it expands to.
//!
//! # Cargo features
//!
//! | Feature   | Default | What it enables | Its heavy dependencies |
//! |-----------|---------|-----------------|------------------------|
//! | `api`     | on  | The API broker: `Edri::builder().api(addr)`, REST and WebSocket routes from events, the catalog, `/metrics`, OpenAPI, the live page ([`api`]) | axum, hyper, tower-http, sha2 |
//! | `durable` | on  | The store in a file: `Store::durable(path)` ([`store`]) | redb |
//! | `cron`    | on  | Cron expressions in the scheduler: `Job::cron(expr, event)` ([`scheduler`]) | croner, chrono |
//! | `switch`  | on  | Routers joined through a switch: `Edri::builder().switch(addr)`, the `switch` module | hmac, sha2 |
//! | `nats`    | off | Routers joined through NATS: `Edri::builder().nats(..)`, the `nats` module | async-nats (rustls, ring) |
//! | `anyhow`  | off | `?` on `anyhow::Error` in handlers | anyhow |
//! | `otel`    | off | EDRI's traces exported through OpenTelemetry with EDRI's ids: `otel::layer(tracer)` | opentelemetry (trace only) |
//!
//! What a feature enables is absent without it: calling it is a compile error, never a
//! surprise at run time. The rest works without the feature's dependencies: the store in
//! memory, the scheduler's `at`, `after` and `every` jobs, a single router. A lean build:
//!
//! ```toml
//! [dependencies]
//! edri = { version = "0.1", default-features = false, features = ["api"] }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

/// Declares an event: `#[event(notification | request | tunnel, ...)]` on a struct.
///
/// Arguments: exactly one of `notification`, `request`, `tunnel`; `name = "files.list"`
/// (wire/API name, default the struct's identifier); `response = T` (requests: an existing
/// response type instead of the generated one); `send = T, receive = U` (tunnels: the items
/// the opener sends and receives); `priority = N` (default lane for priority queues, 0 is most
/// urgent); `local` (never leaves this router); `http = "GET /files/{dir}"` (REST route,
/// requests); `ws` (exposed on the WebSocket API); `crate = path` (a renamed `edri`
/// dependency). Unknown or repeated arguments are compile errors listing the valid ones.
///
/// The macro derives `Serialize` and `Deserialize` itself (do not derive them again); a
/// request's fields marked `#[response]` move into the generated `XResponse` struct (same
/// visibility, `Debug + Clone + serde`); a request without such fields gets a unit
/// `XResponse` (an acknowledgement). Each event gets a compile-time fingerprint of its name,
/// kind, field names and field type tokens.
///
/// A field's `#[cfg(..)]` (and `#[cfg_attr(c, cfg(..))]`) is carried into everything generated
/// from it: the response struct, the field list of [`EventMeta`], the
/// fingerprint (one piece per field, each under the field's `cfg`, so two builds that differ
/// in an event's fields refuse to exchange it) and the JSON schema (a cfg-gated field may have
/// a cfg-gated type). Other attributes inside `cfg_attr` are not read by `#[event]`: a
/// `#[cfg_attr(c, serde(rename = ".."))]` is applied by serde but not seen by the schema.
///
/// A `#[response]` field is no part of the request struct: `Divide { a, b, quotient: 0.0 }`
/// is rustc's "struct `Divide` has no field named `quotient`". A macro cannot add a note to
/// that error, so `#[event]` says it where the struct is documented instead: the request gets
/// a doc paragraph "The `#[response]` field `quotient` is not part of this request: it is in
/// `DivideResponse`, what its handler returns." (shown on hover and in rustdoc).
///
/// On an argument error (`htp = ".."`, a kind given twice, `Serialize` derived by hand, …)
/// the expansion is still emitted from the arguments that parsed: a misspelled kind is read
/// as the kind it is closest to (`reqest`: a request), a missing one from the other arguments
/// (`response`, `http` or a `#[response]` field: a request; `send`/`receive`: a tunnel; else a
/// notification), so the event's handlers and senders add no errors of their own. A generic
/// struct or an enum cannot be an event and is emitted as written.
///
/// `http` and `ws` need named fields (the API fills them from JSON by name); `ws` is for
/// requests and notifications. Such an event also gets a schema function and its JSON hooks
/// for the API broker ([`api`]); the probe picks `JsonSchema` where the field type implements
/// it and an open schema otherwise, so no event needs `JsonSchema`.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
///
/// /// A notification: every subscriber gets it, nobody answers.
/// #[event(notification)]
/// #[derive(Debug, Clone)]
/// pub struct FileUploaded { pub path: String, pub size: u64 }
///
/// /// A request with a generated response: `#[response]` fields move into `DivideResponse`.
/// #[event(request)]
/// #[derive(Debug, Clone)]
/// pub struct Divide {
///     pub a: f64,
///     pub b: f64,
///     #[response]
///     pub quotient: f64,
/// }
///
/// /// A request answered with an existing type, with a REST route and on the WebSocket API.
/// #[event(request, response = Listing, http = "GET /files/{dir}", ws)]
/// pub struct ListDir { pub dir: String }
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// pub struct Listing { pub names: Vec<String> }
///
/// /// A tunnel: the opener sends and receives `Chunk`s.
/// #[event(tunnel, send = edri::Chunk, receive = edri::Chunk)]
/// pub struct Convert { pub to: String }
///
/// // Built from the request, answered with the response:
/// let question = Divide { a: 1.0, b: 4.0 };
/// let answer = DivideResponse { quotient: question.a / question.b };
/// assert_eq!(answer.quotient, 0.25);
/// assert_eq!(<Divide as Event>::META.name, "Divide");
/// ```
///
/// <details><summary>Expansion of a request</summary>
///
/// ```text
/// #[event(request)]
/// #[derive(Debug, Clone)]
/// pub struct Divide {
///     pub a: f64,
///     pub b: f64,
///     /// The answer.
///     #[response]
///     pub quotient: f64,
/// }
/// ```
/// becomes (`/* … */` marks what is left out here)
/// ```text
/// #[derive(::edri::__private::serde::Serialize, ::edri::__private::serde::Deserialize)]
/// #[serde(crate = "::edri::__private::serde")]
/// #[derive(Debug, Clone)]
/// ///The `#[response]` field `quotient` is not part of this request: it is in [`DivideResponse`], what its handler returns.
/// pub struct Divide {
///     pub a: f64,
///     pub b: f64,
/// }
/// ///The response to [`Divide`], generated by `#[event(request)]` from its `#[response]` fields.
/// #[derive(
///     ::core::fmt::Debug,
///     ::core::clone::Clone,
///     ::edri::__private::serde::Serialize,
///     ::edri::__private::serde::Deserialize
/// )]
/// #[serde(crate = "::edri::__private::serde")]
/// pub struct DivideResponse {
///     /// The answer.
///     pub quotient: f64,
/// }
/// const _: () = {
///     #[automatically_derived]
///     impl ::edri::__private::Event for Divide {
///         type Output = DivideResponse;
///         type Kind = ::edri::__private::kind::Request;
///         const META: &'static ::edri::__private::EventMeta = &::edri::__private::EventMeta {
///             name: "Divide",
///             rust_name: ::core::concat!(::core::module_path!(), "::", "Divide"),
///             kind: ::edri::__private::EventKind::Request,
///             fingerprint: ::edri::__private::fingerprint_parts(
///                 &["Divide|request|", "a:f64;", "b:f64;", "|", "quotient:f64;"],
///             ),
///             priority: 0u8,
///             local: false,
///             http: ::core::option::Option::None,
///             ws: false,
///             response: ::core::option::Option::Some("DivideResponse"),
///             tunnel: ::core::option::Option::None,
///             fields: &[
///                 ::edri::__private::FieldMeta { name: "a", ty: "f64", response: false },
///                 /* b, quotient */
///             ],
///             location: ::edri::__private::Location {
///                 file: ::core::file!(),
///                 line: ::core::line!(),
///             },
///         };
///     }
///     #[automatically_derived]
///     impl ::edri::__private::Request for Divide {}
///     ::edri::__private::inventory::submit! {
///         ::edri::__private::EventRegistration {
///             meta: <Divide as ::edri::__private::Event>::META,
///             type_id: ::edri::__private::type_id_of::<Divide>,
///             notify_bytes: <Divide as ::edri::__private::Dispatch>::__notify_bytes,
///             request_bytes: <Divide as ::edri::__private::Dispatch>::__request_bytes,
///             accept_bytes: ::core::option::Option::None,
///             api: ::core::option::Option::None,
///         }
///     }
/// };
/// ```
/// </details>
///
/// <details><summary>What <code>ws</code> or <code>http</code> adds</summary>
///
/// ```text
/// #[event(notification, name = "files.uploaded", priority = 3, ws, local)]
/// pub struct FileUploaded { pub path: String, pub size: u64 }
/// ```
/// gets, inside its `const _`, a schema function, and its registration names it:
/// ```text
/// fn __edri_schema(
///     generator: &mut ::edri::__private::SchemaGenerator,
/// ) -> ::edri::__private::EventSchema {
///     #[allow(unused_imports)]
///     use ::edri::__private::{ViaJsonSchema as _, ViaNoSchema as _};
///     ::edri::__private::EventSchema {
///         fields: ::edri::__private::object_schema([
///             ::edri::__private::FieldSchema {
///                 name: "path",
///                 schema: (&&::edri::__private::SchemaProbe::<String>::new())
///                     .edri_schema(generator),
///                 required: true,
///             },
///             /* size */
///         ]),
///         response: ::core::option::Option::None,
///     }
/// }
/// ::edri::__private::inventory::submit! {
///     ::edri::__private::EventRegistration {
///         /* meta, type_id, notify_bytes, request_bytes, accept_bytes */
///         api: ::core::option::Option::Some(
///             ::edri::__private::ApiHooks::notification::<FileUploaded>(__edri_schema),
///         ),
///     }
/// }
/// ```
/// </details>
pub use edri_macros::event;

/// Declares a manager: `#[manager]` on the inherent impl block whose methods carry
/// [`#[solve]`](solve).
///
/// Options: `queue = fifo | priority`, `capacity = N` (mailbox size, default 1024),
/// `name = ".."` (default the type's identifier), `manual` (never started automatically, only
/// through `Edri::builder().manager(instance)`), `crate = path`.
///
/// A manager whose type implements `Default` (and is not `manual`) is started by every
/// `Edri::builder()` automatically. Handler shapes, checked at compile time:
///
/// - inline (default): `fn h(&mut self | &self, ev: &E | E [, ctx: &Ctx]) -> R`, sync or `async`;
/// - `#[solve(thread, limit = N)]`: `fn h(ev: E [, ctx: Ctx]) -> R`, on its own threads;
/// - `#[solve(process, limit = N)]`: same shape, in a child process (see the README for the
///   state of process mode);
/// - a tunnel's acceptor: inline `fn h(&mut self | &self, ev: &E | E, opening: Opening<E>
///   [, ctx: &Ctx]) -> R`, sync or `async`, or `#[solve(process, limit = N)] fn h(ev: E,
///   opening: Opening<E> [, ctx: Ctx]) -> R` in a worker process; it accepts or rejects the
///   [`Opening`].
///
/// `R` is the event's response (or `Result<Response, X>` with `X: Into<Failure>`) for a
/// request, `()` (or `Result<(), X>`, errors logged) for a notification, `()` (or
/// `Result<(), X>`: an error rejects the opening if it is still unanswered) for an acceptor.
///
/// One `#[manager]` impl block per type: a second block on the same type is rustc's E0119
/// "conflicting implementations of trait `Manager`" (a macro sees one block at a time and
/// cannot word that error); merge the blocks.
///
/// Type errors in a handler's signature are reported once, on the user's own tokens, in
/// EDRI's words: a parameter that is no event ("`String` is not an edri event"), a return
/// type that does not fit the event ([`IntoReply`]), an error type that is no [`Failure`]
/// ([`IntoFailure`], on the `X` of `Result<O, X>`), a context parameter of another type
/// ([`FromCtx`]). A handler whose future is not `Send` is rustc's "future cannot be sent
/// between threads safely" on the `#[manager]` attribute, with rustc's note pointing at the
/// value held across the `.await` in the handler.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use edri::prelude::*;
///
/// #[event(request)]
/// pub struct Divide { pub a: f64, pub b: f64, #[response] pub quotient: f64 }
///
/// #[event(notification)]
/// pub struct FileUploaded { pub path: String, pub size: u64 }
///
/// #[derive(Default)]            // `Default` and not `manual`: every router starts it
/// pub struct Calc { bytes: u64 }
///
/// #[manager(queue = priority, capacity = 64)]
/// impl Calc {
///     #[solve]
///     fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> {
///         if ev.b == 0.0 {
///             return Err(Failure::invalid("division by zero"));
///         }
///         Ok(DivideResponse { quotient: ev.a / ev.b })
///     }
///
///     #[solve]
///     async fn uploaded(&mut self, ev: &FileUploaded, ctx: &Ctx) {
///         self.bytes += ev.size;
///         if self.bytes > 1 << 30 {
///             ctx.shutdown(); // handlers reach the router through their `Ctx`
///         }
///     }
/// }
///
/// #[edri::main(tracing = false)]
/// async fn main() -> edri::Result<()> {
///     let running = Edri::builder().start().await?;
///     assert!(running.managers().contains(&"Calc"));
///     running.ctx().notify(FileUploaded { path: "a.txt".into(), size: 3 }).await?;
///     let answer = running.ctx().request(Divide { a: 1.0, b: 4.0 }).await?;
///     assert_eq!(answer.quotient, 0.25);
///     running.shutdown().await
/// }
/// ```
///
/// <details><summary>Expansion</summary>
///
/// ```text
/// #[manager]
/// impl Calc {
///     #[solve]
///     fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> { todo!() }
///     #[solve]
///     async fn uploaded(&mut self, ev: &FileUploaded, ctx: &Ctx) {}
/// }
/// ```
/// becomes (`/* … */` marks what is left out here)
/// ```text
/// impl Calc {
///     #[solve(__edri_checked)]
///     fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> {
///         todo!()
///     }
///     #[solve(__edri_checked)]
///     async fn uploaded(&mut self, ev: &FileUploaded, ctx: &Ctx) {}
/// }
/// const _: () = {
///     #[automatically_derived]
///     impl ::edri::__private::Manager for Calc {
///         const DESCRIPTOR: &'static ::edri::__private::ManagerDescriptor = &::edri::__private::ManagerDescriptor {
///             name: "Calc",
///             rust_name: ::core::concat!(::core::module_path!(), "::", "Calc"),
///             /* location */
///             options: ::edri::__private::ManagerOptions {
///                 queue: ::edri::__private::QueueKind::Fifo,
///                 capacity: ::core::option::Option::None,
///                 manual: false,
///             },
///             handlers: &[
///                 ::edri::__private::HandlerDescriptor {
///                     event: <Divide as ::edri::__private::Event>::META,
///                     event_type: ::edri::__private::type_id_of::<Divide>,
///                     method: "divide",
///                     mode: ::edri::__private::Mode::Inline,
///                     limit: 1usize,
///                     /* location */
///                     process: ::core::option::Option::None,
///                 },
///                 /* uploaded */
///             ],
///             type_id: ::edri::__private::type_id_of::<Calc>,
///             make_default: __edri_make_default,
///         };
///         fn dispatch<'__edri>(
///             &'__edri mut self,
///             envelope: ::edri::__private::Envelope,
///             ctx: &'__edri ::edri::__private::Ctx,
///         ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send + '__edri {
///             async move {
///                 match envelope.handler() {
///                     0 => {
///                         <<Divide as ::edri::__private::Event>::Kind as ::edri::__private::kind::Plain>::check();
///                         let (event, reply) = <Divide as ::edri::__private::Dispatch>::__open(envelope);
///                         let out = <Calc>::divide(self, &*event);
///                         <Divide as ::edri::__private::Dispatch>::__finish(
///                             ctx,
///                             reply,
///                             ::core::convert::identity({
///                                 let __edri_split = <Result<DivideResponse, Failure>
///                                     as ::edri::__private::IntoReply<
///                                         <Divide as ::edri::__private::Dispatch>::Answer,
///                                     >>::into_result(out);
///                                 <Divide as ::edri::__private::Dispatch>::__reply(
///                                     ::core::convert::identity(__edri_split),
///                                     <Failure as ::edri::__private::IntoFailure>::into_failure,
///                                 )
///                             }),
///                         );
///                     }
///                     1 => {
///                         <<FileUploaded as ::edri::__private::Event>::Kind as ::edri::__private::kind::Plain>::check();
///                         let (event, reply) = <FileUploaded as ::edri::__private::Dispatch>::__open(envelope);
///                         let __edri_ctx = <&Ctx as ::edri::__private::FromCtx<&::edri::__private::Ctx>>::from_ctx(ctx);
///                         let out = <Calc>::uploaded(self, &*event, __edri_ctx).await;
///                         <FileUploaded as ::edri::__private::Dispatch>::__finish(
///                             ctx,
///                             reply,
///                             /* the same conversion, for `()` */
///                         );
///                     }
///                     _ => {
///                         ::edri::__private::unknown_handler(
///                             <Self as ::edri::__private::Manager>::DESCRIPTOR,
///                             &envelope,
///                         )
///                     }
///                 }
///             }
///         }
///     }
///     fn __edri_make_default() -> ::core::option::Option<
///         ::std::boxed::Box<dyn ::edri::__private::ErasedManager>,
///     > {
///         #[allow(unused_imports)]
///         use ::edri::__private::{ViaDefault as _, ViaNoDefault as _};
///         (&&::edri::__private::DefaultProbe::<Calc>::new()).edri_default()
///     }
///     ::edri::__private::inventory::submit! {
///         ::edri::__private::ManagerRegistration(<Calc as ::edri::__private::Manager>::DESCRIPTOR)
///     }
/// };
/// ```
///
/// The other shapes get other arms: a thread handler (`#[solve(thread, limit = 4)] fn
/// checksum(ev: Checksum, ctx: Ctx)`), a process handler, an acceptor
/// (`fn convert(&mut self, ev: &Convert, opening: Opening<Convert>, ctx: &Ctx)`):
/// ```text
/// 2 => {
///     <<Checksum as ::edri::__private::Event>::Kind as ::edri::__private::kind::Plain>::check();
///     <Checksum as ::edri::__private::Dispatch>::__thread(
///         ctx,
///         2,
///         envelope,
///         |event, ctx| {
///             let __edri_ctx = <Ctx as ::edri::__private::FromCtx<::edri::__private::Ctx>>::from_ctx(ctx);
///             let out = <Calc>::checksum(event, __edri_ctx);
///             ::core::convert::identity({
///                 let __edri_split = <ChecksumResponse as ::edri::__private::IntoReply<
///                     <Checksum as ::edri::__private::Dispatch>::Answer,
///                 >>::into_result(out);
///                 /* `__reply`, as above */
///             })
///         },
///     )
///     .run()
///     .await
/// }
/// 3 => {
///     <<Transcode as ::edri::__private::Event>::Kind as ::edri::__private::kind::Plain>::check();
///     <Transcode as ::edri::__private::Dispatch>::__process_call(ctx, 3, envelope).run().await
/// }
/// 4 => {
///     let (event, opening, reply) = <<Convert as ::edri::__private::Event>::Kind as ::edri::__private::Accept<
///         Convert,
///     >>::__accept(envelope);
///     let __edri_opening = opening;
///     let __edri_ctx = <&Ctx as ::edri::__private::FromCtx<&::edri::__private::Ctx>>::from_ctx(ctx);
///     let out = <Calc>::convert(self, &*event, __edri_opening, __edri_ctx);
///     <Convert as ::edri::__private::Dispatch>::__finish(ctx, reply, /* as above */);
/// }
/// ```
/// and a process handler a function its worker calls (`transcode(ev: Transcode)`):
/// ```text
/// fn __edri_process_3(
///     input: &[u8],
///     ctx: ::edri::__private::Ctx,
/// ) -> ::core::result::Result<::std::vec::Vec<u8>, ::edri::__private::Failure> {
///     <Transcode as ::edri::__private::Dispatch>::__process(
///         input,
///         ctx,
///         |event, _| {
///             let out = <Calc>::transcode(event);
///             /* the conversion, as above */
///         },
///     )
/// }
/// ```
/// </details>
pub use edri_macros::manager;

/// Marks a handler method inside a [`#[manager]`](manager) impl block:
/// `#[solve]` (inline: on the manager's own task, one event at a time, `&mut self` allowed),
/// `#[solve(thread, limit = N)]` (on up to N threads of its own, no `self`),
/// `#[solve(process, limit = N)]` (in up to N child processes of this binary, no `self`).
///
/// Outside such a block it is a compile error. The handler shapes and what each returns are
/// listed under [`#[manager]`](manager).
///
/// # Examples
///
/// ```rust,standalone_crate
/// use edri::prelude::*;
///
/// #[event(request)]
/// pub struct Checksum { pub data: Vec<u8>, #[response] pub sum: u32 }
///
/// #[event(request)]
/// pub struct Compress { pub data: Vec<u8>, #[response] pub packed: Vec<u8> }
///
/// #[event(notification)]
/// pub struct Tick;
///
/// #[derive(Default)]
/// pub struct Worker { ticks: u64 }
///
/// #[manager]
/// impl Worker {
///     /// Inline, sync, with `&mut self`.
///     #[solve]
///     fn tick(&mut self, _ev: &Tick) {
///         self.ticks += 1;
///     }
///
///     /// CPU work on threads of its own, at most 4 at once; the event is owned.
///     #[solve(thread, limit = 4)]
///     fn checksum(ev: Checksum) -> ChecksumResponse {
///         ChecksumResponse { sum: ev.data.iter().map(|&b| u32::from(b)).sum() }
///     }
///
///     /// In a child process of this binary (crash-isolated): `main` must be `#[edri::main]`
///     /// or call `edri::serve_if_worker()` first.
///     #[solve(process, limit = 2)]
///     fn compress(ev: Compress, _ctx: Ctx) -> Result<CompressResponse, Failure> {
///         Ok(CompressResponse { packed: ev.data })
///     }
/// }
///
/// #[edri::main(tracing = false)]
/// async fn main() -> edri::Result<()> {
///     let running = Edri::builder().start().await?;
///     running.ctx().notify(Tick).await?;
///     let answer = running.ctx().request(Checksum { data: vec![1, 2, 3] }).await?;
///     assert_eq!(answer.sum, 6);
///     running.shutdown().await
/// }
/// ```
pub use edri_macros::solve;

/// The entry point of an EDRI program: `#[edri::main] async fn main() -> edri::Result<()>`.
///
/// Builds a tokio runtime (multi-threaded by default; `flavor = "current_thread"`,
/// `worker_threads = N`) and blocks on the body. It is also the hook through which a binary
/// serves as its own process-mode worker.
///
/// Logs come out of the box: when the router starts, a `tracing` subscriber printing to stderr
/// is installed, filtered by `RUST_LOG` (default `info`), unless the program set its own first
/// (before `Edri::builder().start()`) or opted out with `tracing = false`
/// ([`tracing::init`] for a plain `main`). An error returned from `main`
/// is printed with its `Display` text.
///
/// # Examples
///
/// ```no_run
/// #[edri::main(flavor = "current_thread", tracing = false)]
/// async fn main() -> edri::Result<()> {
///     edri::Edri::builder().run().await
/// }
/// ```
///
/// <details><summary>Expansion</summary>
///
/// `#[edri::main] async fn main() -> edri::Result<()> { .. }` becomes (`/* … */` marks what is
/// left out here)
/// ```text
/// fn main() -> edri::Result<()> {
///     ::edri::__private::logs_at_start(true);
///     ::edri::__private::serve_if_worker();
///     ::edri::__private::build_runtime(false, ::core::option::Option::None)
///         .block_on(async move {
///             /* the body */
///         })
/// }
/// ```
/// </details>
pub use edri_macros::main;

/// Logs out of the box: [`init`](tracing::init) installs the subscriber `#[edri::main]` installs
/// (stderr, `RUST_LOG`, default `info`) in a program with a plain `main`.
pub mod tracing {
    pub use edri_runtime::logging::{DEFAULT_FILTER, init};
}

/// What runs in a router and who it is joined to ([`Running::topology`], `GET /edri/topology`).
pub use edri_runtime::{EventNode, HandlerNode, ManagerNode, RouterNode, SenderNode, Topology};

/// The application's own metrics next to EDRI's in `GET /metrics`: see
/// [`EdriBuilder::metrics_registry`].
pub use edri_runtime::prometheus_client;

pub use edri_runtime::{
    Call, CallAll, Caller, Changed, Ctx, Edri, EdriBuilder, Error, Event, EventKind, EventMeta,
    Failure, FromCtx, Health, HealthCheck, HealthCheckResponse, IntoFailure, IntoReply, Job,
    Location, Manager, ManagerDescriptor, ManagerVitals, Mode, Notification, Pending, QueueKind,
    Request, Response, Result, Running, SchedulerManager, ShutdownReport, StartError, Started,
    Status, Stopping, Store, StoreHandle, StoreManager, TryNotifyError, Tunnel, TunnelEvent,
};

/// Tunnels: confirmed two-way streams with flow control ([`Ctx::open`], [`Opening`]).
pub use edri_runtime::tunnel;

/// The kinds of event as types (what [`Event::Kind`] names).
pub use edri_runtime::kind;
pub use edri_runtime::{Acceptor, Chunk, Open, Opener, Opening, TunnelReceiver, TunnelSender};

/// Everything an application usually needs: `use edri::prelude::*;`.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
///
/// #[event(notification)]
/// pub struct Ping;
///
/// #[derive(Default)]
/// pub struct Pong;
///
/// #[manager]
/// impl Pong {
///     #[solve]
///     fn ping(&mut self, _ev: &Ping, ctx: &Ctx) -> Result<(), Failure> {
///         if ctx.is_stopping() {
///             return Err(Failure::new(Status::Unavailable, "stopping"));
///         }
///         Ok(())
///     }
/// }
/// ```
pub mod prelude {
    pub use crate::{
        Ctx, Edri, Event, Failure, Notification, Opening, Request, Response, Started, Status,
        Stopping, Tunnel, event, manager, solve,
    };
}

/// Keeps a library crate's managers and events in the binary.
///
/// A crate the binary never names is dropped by the linker, and with it the managers it
/// registers; `edri::link!(my_managers);` in the binary (or `use my_managers as _;`) keeps it.
///
/// # Examples
///
/// ```no_run
/// # extern crate serde as billing;
/// # extern crate tokio as shipping;
/// // `billing` and `shipping` are library crates of managers that `main` never names.
/// edri::link!(billing, shipping);
///
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     edri::Edri::builder().run().await
/// }
/// ```
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $( #[allow(unused_imports)] use $krate as _; )+
    };
}

pub use edri_runtime::{is_worker, serve_if_worker};

/// The key-value store every router runs: its request events (`Get`, `Set`, `Delete`, `List`,
/// `CompareAndSet`, `Increment`, `Watch`), the `Changed` notification, and `ctx.store()`.
pub use edri_runtime::store;

/// The scheduler every router runs: `Job`, its requests (`Schedule`, `Update`, `Cancel`,
/// `ListJobs`), and `ctx.schedule(job)` / `ctx.cancel(name)`.
pub use edri_runtime::scheduler;

/// `HealthCheck` and the built-in manager that answers it.
pub use edri_runtime::health;

/// Several routers as one application (feature `switch`): `Edri::builder().switch(addr)` joins
/// the routers of an `edri-switch` (or an in-process [`switch::Server`]); nothing is lost or
/// duplicated through outages of the outage window.
#[cfg(feature = "switch")]
#[cfg_attr(docsrs, doc(cfg(feature = "switch")))]
pub use edri_runtime::switch;

/// Several routers as one application through NATS (feature `nats`):
/// `Edri::builder().nats(Nats::new("nats://127.0.0.1:4222"))`; notifications through a
/// JetStream stream, requests through core NATS request/reply.
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use edri_runtime::nats;

/// EDRI's traces exported through OpenTelemetry with EDRI's own ids (feature `otel`):
/// [`otel::layer`] turns every handling span into an OpenTelemetry span of the chain's trace.
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub use edri_runtime::otel;

/// The API broker (`Edri::builder().api(addr)`): REST routes from `#[event(http = ..)]`, the
/// WebSocket endpoint, health, metrics and the event catalog.
pub use edri_runtime::api;

/// The JSON schema crate behind the event catalog (`GET /edri/events`). Derive
/// `edri::schemars::JsonSchema` (with `#[schemars(crate = "edri::schemars")]`) on your own
/// field and response types to describe them fully in the catalog.
pub use schemars;

#[doc(hidden)]
pub use edri_runtime::__private;

// Every Rust block of the README is a doctest of this crate (`cargo test -p edri --doc`), so
// what users copy from it compiles.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
