//! The `edri.api` manager: subscribed to every `ws` notification, it pushes them to the
//! clients whose subscriptions match.

use super::hub::Hub;
use crate::Ctx;
use crate::envelope::Envelope;
use crate::event::{EventKind, Location};
use crate::manager::{
    ErasedManager, HandlerDescriptor, ManagerDescriptor, ManagerOptions, Mode, QueueKind, Serve,
    serve,
};
use crate::registry::EventRegistration;
use std::any::TypeId;
use std::sync::{Arc, OnceLock};

/// The `edri.api` manager: subscribed to every `ws` notification, it pushes them to clients.
pub(crate) struct Bridge {
    hub: Arc<Hub>,
    /// By handler index: the event's registration.
    events: &'static [&'static EventRegistration],
}

/// The `ws` notifications of this binary and the descriptor of the manager receiving them.
fn descriptor() -> &'static (Vec<&'static EventRegistration>, ManagerDescriptor) {
    static DESCRIPTOR: OnceLock<(Vec<&'static EventRegistration>, ManagerDescriptor)> =
        OnceLock::new();
    DESCRIPTOR.get_or_init(|| {
        let mut events: Vec<&'static EventRegistration> = crate::registry::events()
            .filter(|r| r.meta.ws && r.meta.kind == EventKind::Notification && r.api.is_some())
            .collect();
        events.sort_by_key(|r| r.meta.name);
        events.dedup_by_key(|r| r.meta.name);
        let location = Location { file: file!(), line: line!() };
        let handlers: Vec<HandlerDescriptor> = events
            .iter()
            .map(|r| HandlerDescriptor {
                event: r.meta,
                event_type: r.type_id,
                method: "push",
                mode: Mode::Inline,
                limit: 1,
                location,
                process: None,
            })
            .collect();
        // Descriptors are 'static; this one is built once per program, like a generated one.
        let handlers: &'static [HandlerDescriptor] = Box::leak(handlers.into_boxed_slice());
        let descriptor = ManagerDescriptor {
            name: "edri.api",
            rust_name: "edri::api::Bridge",
            location,
            options: ManagerOptions { queue: QueueKind::Fifo, capacity: None, manual: true },
            handlers,
            type_id: || TypeId::of::<Bridge>(),
            make_default: || None,
        };
        (events, descriptor)
    })
}

impl Bridge {
    /// The bridge, when this binary has `ws` notifications.
    pub(crate) fn boxed(hub: Arc<Hub>) -> Option<Box<dyn ErasedManager>> {
        let (events, _) = descriptor();
        if events.is_empty() {
            return None;
        }
        Some(Box::new(Self { hub, events: events.as_slice() }))
    }
}

impl Serve for Bridge {
    fn dispatch<'a>(
        &'a mut self,
        envelope: Envelope,
        _ctx: &'a Ctx,
    ) -> impl Future<Output = ()> + Send + 'a {
        if let Some(reg) = self.events.get(usize::from(envelope.handler))
            && self.hub.subscribed(reg.meta.name)
            && let Some(encode) = reg.api.map(|h| h.encode)
            && let Some(data) = encode(envelope)
        {
            self.hub.push(reg.meta.name, data);
        }
        std::future::ready(())
    }
}

impl ErasedManager for Bridge {
    fn descriptor(&self) -> &'static ManagerDescriptor {
        &descriptor().1
    }

    fn spawn(
        self: Box<Self>,
        mailbox: crate::mailbox::MailboxRx,
        ctx: Ctx,
        runtime: &tokio::runtime::Handle,
    ) -> tokio::task::JoinHandle<()> {
        runtime.spawn(serve(*self, &descriptor().1, mailbox, ctx))
    }
}
