//! [`Topology`]: what runs in a router and who it is joined to, as one JSON-ready snapshot
//! (`Running::topology()`, `GET /edri/topology`).

use super::Shared;
use crate::manager::{Mode, QueueKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A snapshot of a router: its managers with their live counters and handlers, every event
/// they handle or send with who sends it, and the other routers it is joined to.
///
/// # Examples
///
/// ```
/// fn busiest(running: &edri::Running) -> Option<String> {
///     let topology = running.topology();
///     topology.managers.iter().max_by_key(|m| m.depth).map(|m| m.name.clone())
/// }
/// ```
///
/// The JSON form (`GET /edri/topology`):
///
/// ```json
/// { "uptime_ms": 5120, "pid": 4242,
///   "managers": [ { "name": "Billing", "queue": "fifo", "capacity": 1024, "depth": 0,
///                   "busy": false, "processed": 12, "failed": 1, "crashed": 0, "dropped": 0,
///                   "workers": 1, "workers_idle": 1,
///                   "handlers": [ { "event": "Charge", "method": "charge", "mode": "inline",
///                                   "limit": 1 } ] } ],
///   "events": [ { "name": "Charge", "kind": "notification", "handlers": ["Billing::charge"],
///                 "senders": [ { "from": "Orders", "total": 40, "last_minute": 12 },
///                              { "from": "outside", "total": 2, "last_minute": 0 } ] } ],
///   "routers": [ { "via": "switch", "id": "pricing", "connected": true,
///                  "subscribes": ["Charge"], "responds": ["Price"] } ] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Topology {
    /// Milliseconds since the router started.
    pub uptime_ms: u64,
    /// This process's id.
    pub pid: u32,
    /// Every running manager, by name.
    pub managers: Vec<ManagerNode>,
    /// Every event some manager of this router handles or somebody here sent, by name.
    pub events: Vec<EventNode>,
    /// The other routers this one is joined to (through the switch or another transport).
    pub routers: Vec<RouterNode>,
}

/// One running manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ManagerNode {
    /// Its name.
    pub name: String,
    /// `"fifo"` or `"priority"`.
    pub queue: String,
    /// Its mailbox capacity.
    pub capacity: usize,
    /// Events waiting in its mailbox now.
    pub depth: usize,
    /// Whether it is handling an event now.
    pub busy: bool,
    /// Events handled (failed and crashed included).
    pub processed: u64,
    /// Handlers that returned an error.
    pub failed: u64,
    /// Handlers that panicked (or whose worker died).
    pub crashed: u64,
    /// Events dropped at shutdown.
    pub dropped: u64,
    /// Live worker processes of its process handlers.
    pub workers: usize,
    /// Of those, the idle ones.
    pub workers_idle: usize,
    /// Its handlers, in declaration order.
    pub handlers: Vec<HandlerNode>,
}

/// One handler of a manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HandlerNode {
    /// The event it handles.
    pub event: String,
    /// The method's name.
    pub method: String,
    /// `"inline"`, `"thread"` or `"process"`.
    pub mode: String,
    /// How many calls may run at once (1 for inline handlers).
    pub limit: usize,
}

/// One event handled or sent in this router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventNode {
    /// Its name.
    pub name: String,
    /// `"notification"`, `"request"` or `"tunnel"`.
    pub kind: String,
    /// Its handlers in this router, as `manager::method` (none when only other routers
    /// handle it).
    pub handlers: Vec<String>,
    /// Who sent it in this router since the start, those who never did left out.
    pub senders: Vec<SenderNode>,
}

/// One sender of an event, as the router saw it on the send path.
///
/// A notification counts once per send, whatever the number of subscribers; a request,
/// `request_all` or tunnel opening counts once per call. Events from other routers count
/// when they are handed to this router's managers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SenderNode {
    /// A manager's name; `"outside"` for code outside the managers (`Running::ctx`, the API
    /// broker), `"remote"` for other routers and a worker process's parent, `"router"` for
    /// the router's own `Started` and `Stopping`.
    pub from: String,
    /// Sends since the router started.
    pub total: u64,
    /// Sends in the last minute (sampled every 5 s: the window is 60–65 s).
    pub last_minute: u64,
}

/// Another router this one is joined to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RouterNode {
    /// The transport joining them (`"switch"`).
    pub via: String,
    /// Its id.
    pub id: String,
    /// Whether it is reachable now.
    pub connected: bool,
    /// The notifications it has subscribers for.
    pub subscribes: Vec<String>,
    /// The requests it answers and the tunnels it accepts.
    pub responds: Vec<String>,
}

impl RouterNode {
    /// A router joined through `via`.
    #[cfg(any(feature = "switch", feature = "nats"))]
    pub(crate) fn new(
        via: &str,
        id: String,
        connected: bool,
        subscribes: Vec<String>,
        responds: Vec<String>,
    ) -> Self {
        Self { via: via.to_owned(), id, connected, subscribes, responds }
    }
}

/// The snapshot of `shared`'s router.
pub(crate) fn snapshot(shared: &Shared) -> Topology {
    let vitals = shared.vitals();
    let mut events: BTreeMap<&'static str, EventNode> = shared
        .routes
        .iter()
        .filter_map(|(id, route)| {
            let senders = super::senders::of(shared, *id, route);
            let handled = !route.subscribers.is_empty() || route.responder.is_some();
            (handled || !senders.is_empty()).then(|| {
                let senders = senders
                    .into_iter()
                    .map(|(from, total, last_minute)| SenderNode { from, total, last_minute })
                    .collect();
                let node = EventNode {
                    name: route.event.name.to_owned(),
                    kind: route.event.kind.as_str().to_owned(),
                    handlers: Vec::new(),
                    senders,
                };
                (route.event.name, node)
            })
        })
        .collect();
    let managers = shared
        .managers
        .iter()
        .zip(vitals)
        .map(|(slot, v)| {
            let d = slot.descriptor;
            let handlers = d
                .handlers
                .iter()
                .map(|h| {
                    if let Some(node) = events.get_mut(h.event.name) {
                        node.handlers.push(format!("{}::{}", d.name, h.method));
                    }
                    HandlerNode {
                        event: h.event.name.to_owned(),
                        method: h.method.to_owned(),
                        mode: h.mode.as_str().to_owned(),
                        limit: if h.mode == Mode::Inline { 1 } else { h.limit.max(1) },
                    }
                })
                .collect();
            ManagerNode {
                name: v.name,
                queue: match d.options.queue {
                    QueueKind::Fifo => "fifo",
                    QueueKind::Priority => "priority",
                }
                .to_owned(),
                capacity: v.capacity,
                depth: v.queued,
                busy: v.busy,
                processed: v.processed,
                failed: v.failed,
                crashed: v.crashed,
                dropped: v.dropped,
                workers: v.workers,
                workers_idle: v.workers_idle,
                handlers,
            }
        })
        .collect();
    let routers = shared
        .attachments
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .flat_map(|a| a.routers())
        .collect();
    Topology {
        uptime_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        pid: std::process::id(),
        managers,
        events: events.into_values().collect(),
        routers,
    }
}
