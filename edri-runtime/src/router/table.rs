//! Building and checking the routing table at start-up.

use crate::error::StartError;
use crate::event::{EventKind, EventMeta};
use crate::manager::ManagerDescriptor;
use crate::registry::EventRegistration;
use std::any::TypeId;
use std::collections::HashMap;

/// Where one event type goes. Every event of the binary has one, handled here or not.
pub(crate) struct Route {
    /// The event.
    pub(crate) event: &'static EventMeta,
    /// Every handler of a notification, in manager order.
    pub(crate) subscribers: Box<[Target]>,
    /// The one handler of a request, or the acceptor of a tunnel.
    pub(crate) responder: Option<Target>,
    /// Sends of this event so far, by sender (see [`super::senders`]).
    pub(crate) sent: super::senders::Sent,
    /// Its number between routers ([`crate::peering`]), or [`Outbound::NO_WIRE`](super::Outbound::NO_WIRE).
    pub(crate) wire: u32,
}

impl Route {
    /// The event as an uplink takes it: its name and its number between routers.
    #[inline]
    pub(crate) fn outbound(&self) -> super::attach::Outbound {
        super::attach::Outbound { name: self.event.name, wire: self.wire }
    }
}

/// The wire id of `event` ([`crate::peering`]).
fn wire(event: &EventMeta) -> u32 {
    #[cfg(any(feature = "switch", feature = "nats"))]
    if !event.local {
        return crate::peering::wire_id(event.name).unwrap_or(super::Outbound::NO_WIRE);
    }
    let _ = event;
    super::Outbound::NO_WIRE
}

/// One handler of one manager: the mailbox to push into and the handler index to address.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) manager: u32,
    pub(crate) handler: u16,
    pub(crate) mailbox: crate::mailbox::MailboxTx,
    /// The handler runs on its manager's task (not on a thread or in a worker process).
    pub(crate) inline: bool,
}

/// Refuses two event types with one name anywhere in the binary.
pub(crate) fn check_event_names() -> Result<(), StartError> {
    let mut seen: HashMap<&'static str, &EventRegistration> = HashMap::new();
    let mut all: Vec<&EventRegistration> = crate::registry::events().collect();
    all.sort_by_key(|r| (r.meta.location, r.meta.name));
    for reg in all {
        if let Some(first) = seen.insert(reg.meta.name, reg)
            && (first.type_id)() != (reg.type_id)()
        {
            return Err(StartError::DuplicateEventName {
                name: reg.meta.name,
                first: first.meta.rust_name,
                first_at: first.meta.location,
                second: reg.meta.rust_name,
                second_at: reg.meta.location,
            });
        }
    }
    Ok(())
}

/// Builds the table from the managers that will run, in their start order: a route for every
/// event of the binary, with the handlers of those managers.
pub(crate) fn build(
    managers: &[(&'static ManagerDescriptor, crate::mailbox::MailboxTx)],
) -> Result<HashMap<TypeId, Route, super::BuildHasherDefault<super::TypeIdHasher>>, StartError> {
    struct Building {
        event: &'static EventMeta,
        subscribers: Vec<Target>,
        responder: Option<(Target, &'static ManagerDescriptor, usize)>,
    }
    let mut building: HashMap<TypeId, Building> = HashMap::new();
    for (index, (descriptor, mailbox)) in managers.iter().enumerate() {
        for (h, handler) in descriptor.handlers.iter().enumerate() {
            let target = Target {
                manager: u32::try_from(index).map_err(|_| StartError::TooMany("managers"))?,
                handler: u16::try_from(h).map_err(|_| StartError::TooMany("handlers"))?,
                mailbox: mailbox.clone(),
                inline: handler.mode == crate::manager::Mode::Inline,
            };
            let entry = building.entry((handler.event_type)()).or_insert_with(|| Building {
                event: handler.event,
                subscribers: Vec::new(),
                responder: None,
            });
            match handler.event.kind {
                EventKind::Request | EventKind::Tunnel => {
                    if let Some((_, first, fh)) = &entry.responder {
                        let first_handler = &first.handlers[*fh];
                        return Err(StartError::DuplicateResponder {
                            event: handler.event.name,
                            first: format!("{}::{}", first.name, first_handler.method),
                            first_at: first_handler.location,
                            second: format!("{}::{}", descriptor.name, handler.method),
                            second_at: handler.location,
                        });
                    }
                    entry.responder = Some((target, descriptor, h));
                }
                EventKind::Notification => entry.subscribers.push(target),
            }
        }
    }
    for reg in crate::registry::events() {
        building.entry((reg.type_id)()).or_insert_with(|| Building {
            event: reg.meta,
            subscribers: Vec::new(),
            responder: None,
        });
    }
    let senders = super::senders::slots(managers.len());
    Ok(building
        .into_iter()
        .map(|(id, b)| {
            let route = Route {
                wire: wire(b.event),
                event: b.event,
                subscribers: b.subscribers.into_boxed_slice(),
                responder: b.responder.map(|(t, _, _)| t),
                sent: super::senders::Sent::new(senders),
            };
            (id, route)
        })
        .collect())
}
