//! What a router tells the routers it joins, whatever the transport (the switch, NATS): the
//! catalog of its events, what it subscribes to and answers, and its default id.
//!
//! The catalog also numbers the events on the wire: an event's *wire id* is its index in this
//! binary's catalog (sorted by name). A router sends events under its own wire ids; each
//! receiver maps them back through the sender's catalog, which it learns when the sender
//! joins (with the fingerprints), so no event name is looked up per event.

use crate::event::EventKind;
use crate::manager::ManagerDescriptor;
use crate::registry::EventRegistration;
use crate::router::FastMap;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

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

/// This binary's catalog, in wire-id order, with each entry's registration.
fn numbered() -> &'static (Vec<CatalogEntry>, Vec<&'static EventRegistration>) {
    static NUMBERED: OnceLock<(Vec<CatalogEntry>, Vec<&'static EventRegistration>)> =
        OnceLock::new();
    NUMBERED.get_or_init(|| {
        let registry: FastMap<&'static str, &'static EventRegistration> =
            crate::registry::events().map(|r| (r.meta.name, r)).collect();
        let catalog = catalog(&registry);
        let registrations = catalog.iter().map(|e| registry[e.name.as_str()]).collect();
        (catalog, registrations)
    })
}

/// The wire id of event `name` in this binary (start-up and cold paths: a binary search).
pub(crate) fn wire_id(name: &str) -> Option<u32> {
    let catalog = &numbered().0;
    let i = catalog.binary_search_by(|e| e.name.as_str().cmp(name)).ok()?;
    u32::try_from(i).ok()
}

/// The registration of this binary's event with wire id `id`.
pub(crate) fn wire_event(id: u32) -> Option<&'static EventRegistration> {
    numbered().1.get(usize::try_from(id).ok()?).copied()
}

/// Maps another router's wire ids (the index in `theirs`, its catalog) to this binary's
/// events: `Err` with the reason for an event that this binary does not declare, or declares
/// differently (kind or fingerprint); an item under that id is refused with that reason.
pub(crate) fn translate(
    theirs: &[CatalogEntry],
) -> Vec<Result<&'static EventRegistration, std::sync::Arc<str>>> {
    let ours = &numbered().0;
    theirs
        .iter()
        .map(|entry| {
            let Some(id) = wire_id(&entry.name) else {
                return Err(format!("event `{}` is not declared on this router", entry.name).into());
            };
            let mine = &ours[id as usize];
            if mine.kind != entry.kind || mine.fingerprint != entry.fingerprint {
                return Err(format!(
                    "event `{}` is defined differently on this router ({}, fingerprint \
                     {:016x}) and on the sender ({}, fingerprint {:016x})",
                    entry.name, mine.kind, mine.fingerprint, entry.kind, entry.fingerprint
                )
                .into());
            }
            wire_event(id)
                .ok_or_else(|| format!("event `{}` has no registration", entry.name).into())
        })
        .collect()
}

/// This binary's catalog, in wire-id order.
pub(crate) fn wire_catalog() -> &'static [CatalogEntry] {
    &numbered().0
}

/// `<executable>-<pid>`.
pub(crate) fn default_id() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "edri".to_owned());
    format!("{exe}-{}", std::process::id())
}
