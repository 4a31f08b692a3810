//! Events the runtime itself sends.

use edri_macros::event;

/// Sent to every subscriber once every manager is subscribed: the first event each
/// subscribing manager receives.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// # #[event(notification)] pub struct Hello { pub from: String }
///
/// #[derive(Default)]
/// pub struct Greeter;
///
/// #[manager]
/// impl Greeter {
///     #[solve]
///     async fn started(&mut self, _ev: &Started, ctx: &Ctx) -> Result<(), Failure> {
///         // Every manager is subscribed by now: nobody misses this.
///         ctx.notify(Hello { from: "greeter".into() }).await
///     }
/// }
/// ```
#[event(notification, name = "edri.Started", local, crate = crate)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Started;

/// Sent when the router begins to stop; what is queued before it is still served.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
///
/// #[derive(Default)]
/// pub struct Buffer { pending: Vec<String> }
///
/// #[manager]
/// impl Buffer {
///     #[solve]
///     async fn stopping(&mut self, _ev: &Stopping, ctx: &Ctx) -> Result<(), Failure> {
///         // Handlers may still send while the router drains.
///         ctx.store().set("buffer/pending", &self.pending).await.map(drop)
///     }
/// }
/// ```
#[event(notification, name = "edri.Stopping", local, crate = crate)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopping;
