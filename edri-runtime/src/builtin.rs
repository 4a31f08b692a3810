//! Events the runtime itself sends.

use edri_macros::event;

/// Sent to every subscriber once every manager is subscribed: the first event each
/// subscribing manager receives.
///
/// ```ignore
/// #[solve]
/// async fn started(&mut self, _: &Started, ctx: &Ctx) { /* send the first events */ }
/// ```
#[event(notification, name = "edri.Started", local, crate = crate)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Started;

/// Sent when the router begins to stop; what is queued before it is still served.
#[event(notification, name = "edri.Stopping", local, crate = crate)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopping;
