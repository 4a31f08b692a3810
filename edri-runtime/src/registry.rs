//! What the macros register at link time, collected by `inventory`: every `#[event]` and
//! every `#[manager]` of the binary. The only reader of `inventory` in the runtime.

use crate::event::EventMeta;
use crate::manager::ManagerDescriptor;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Decodes a serialized event from another process and delivers it as a notification; the
/// token, if any, is dropped once every local handler returned.
pub(crate) type NotifyBytes = fn(crate::Ctx, &[u8], Option<crate::envelope::Handled>) -> Delivering;

/// What [`EventRegistration::notify_bytes`] returns: delivered already (a tracked
/// notification whose one subscriber had room: no future allocated), or a future to await.
#[doc(hidden)]
#[must_use = "a notification still waiting is not delivered until awaited"]
pub enum Delivering {
    /// Delivered (or refused) at once.
    Done(Option<Result<(), crate::Failure>>),
    /// Waiting for room in a mailbox.
    Waiting(crate::router::BoxFuture<Result<(), crate::Failure>>),
}

impl std::future::Future for Delivering {
    type Output = Result<(), crate::Failure>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Self::Done(result) => std::task::Poll::Ready(result.take().unwrap_or(Ok(()))),
            Self::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

/// Decodes a serialized request from another process, requests it, encodes the response.
pub(crate) type RequestBytes = fn(
    crate::Ctx,
    &[u8],
    std::time::Duration,
) -> crate::router::BoxFuture<Result<Vec<u8>, crate::Failure>>;

/// What every `#[event]` submits to `inventory`: duplicate names are found even for events
/// nobody handles, and events arriving serialized from another process are found by name.
#[derive(Debug)]
pub struct EventRegistration {
    /// The event's metadata.
    pub meta: &'static EventMeta,
    /// The event's type id.
    pub type_id: fn() -> TypeId,
    /// Decodes the event and delivers it as a notification.
    pub notify_bytes: NotifyBytes,
    /// Decodes the event, requests it and encodes the response.
    pub request_bytes: RequestBytes,
    /// Tunnels: decodes the event and offers it to this router's acceptor, for a router that
    /// opened it through the switch.
    pub accept_bytes: Option<crate::tunnel::remote::AcceptBytes>,
    /// The JSON side, for events exposed through `http = ..` or `ws`.
    pub api: Option<crate::api::ApiHooks>,
}

inventory::collect!(EventRegistration);

/// What `#[manager]` submits to `inventory`.
#[derive(Debug)]
pub struct ManagerRegistration(pub &'static ManagerDescriptor);

inventory::collect!(ManagerRegistration);

/// Every `#[event]` of the binary, in link order (unspecified: sort what you show).
pub(crate) fn events() -> impl Iterator<Item = &'static EventRegistration> {
    inventory::iter::<EventRegistration>.into_iter()
}

/// The event named `name`, found in a map built on first use (events arriving serialized
/// from another process are found by name).
pub(crate) fn event(name: &str) -> Option<&'static EventRegistration> {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static EventRegistration>> = OnceLock::new();
    BY_NAME.get_or_init(|| events().map(|r| (r.meta.name, r)).collect()).get(name).copied()
}

/// Every `#[manager]` of the binary, in link order (unspecified: sort what you show).
pub(crate) fn managers() -> impl Iterator<Item = &'static ManagerDescriptor> {
    inventory::iter::<ManagerRegistration>.into_iter().map(|r| r.0)
}
