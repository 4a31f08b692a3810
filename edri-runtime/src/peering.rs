//! What a router tells the routers it joins, whatever the transport (the switch, NATS): the
//! catalog of its events, what it subscribes to and answers, and its default id.

use crate::event::EventKind;
use crate::manager::ManagerDescriptor;
use crate::registry::EventRegistration;
use crate::router::FastMap;
use serde::{Deserialize, Serialize};

/// One event a router knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CatalogEntry {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) fingerprint: u64,
}

/// Name, kind and fingerprint of every event of `registry` that may leave this router.
pub(crate) fn catalog(
    registry: &FastMap<&'static str, &'static EventRegistration>,
) -> Vec<CatalogEntry> {
    let mut catalog: Vec<CatalogEntry> = registry
        .values()
        .filter(|r| !r.meta.local)
        .map(|r| CatalogEntry {
            name: r.meta.name.to_owned(),
            kind: r.meta.kind.as_str().to_owned(),
            fingerprint: r.meta.fingerprint,
        })
        .collect();
    catalog.sort_by(|a, b| a.name.cmp(&b.name));
    catalog
}

/// The notifications `managers` subscribe to and the requests and tunnels they answer.
pub(crate) fn interests(managers: &[&'static ManagerDescriptor]) -> (Vec<String>, Vec<String>) {
    let (mut subscribes, mut responds) = (Vec::new(), Vec::new());
    for handler in managers.iter().flat_map(|m| m.handlers.iter()) {
        if handler.event.local {
            continue;
        }
        match handler.event.kind {
            EventKind::Notification => subscribes.push(handler.event.name.to_owned()),
            EventKind::Request | EventKind::Tunnel => {
                responds.push(handler.event.name.to_owned());
            }
        }
    }
    for list in [&mut subscribes, &mut responds] {
        list.sort();
        list.dedup();
    }
    (subscribes, responds)
}

/// `<executable>-<pid>`.
pub(crate) fn default_id() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "edri".to_owned());
    format!("{exe}-{}", std::process::id())
}
