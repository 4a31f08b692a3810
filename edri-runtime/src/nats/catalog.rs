//! The routers of a namespace: each writes its presence (subscriptions, responders, event
//! catalog with fingerprints) into the key-value bucket `<ns>_routers` every second; every
//! router watches the bucket. A router whose catalog defines an event differently from a
//! router already there refuses to start.

use super::NatsPeer;
use crate::peering::CatalogEntry;
use async_nats::Subject;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

/// How often a router rewrites its presence.
pub(super) const HEARTBEAT_MS: u64 = 1_000;
/// A router whose presence is older than this is shown disconnected.
pub(super) const ALIVE_MS: u64 = 4_000;

/// What a router writes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Presence {
    pub(super) epoch: u64,
    /// Wall clock, milliseconds since the Unix epoch, when written.
    pub(super) at_ms: u64,
    pub(super) subscribes: Vec<String>,
    pub(super) responds: Vec<String>,
    pub(super) catalog: Vec<CatalogEntry>,
}

/// Milliseconds since the Unix epoch.
pub(super) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The first event that `ours` defines differently from router `id`'s `theirs`, as a message.
pub(super) fn conflict(ours: &[CatalogEntry], id: &str, theirs: &[CatalogEntry]) -> Option<String> {
    let theirs: HashMap<&str, &CatalogEntry> =
        theirs.iter().map(|e| (e.name.as_str(), e)).collect();
    ours.iter().find_map(|mine| {
        let other = theirs.get(mine.name.as_str())?;
        (mine.kind != other.kind || mine.fingerprint != other.fingerprint).then(|| {
            format!(
                "event `{}` is defined differently on this router ({}, fingerprint {:016x}) and \
                 on router `{id}` ({}, fingerprint {:016x}); build both from the same definition",
                mine.name, mine.kind, mine.fingerprint, other.kind, other.fingerprint
            )
        })
    })
}

/// The other routers, as last read from the bucket.
#[derive(Default)]
pub(super) struct Peers {
    table: RwLock<Table>,
    /// Turns of the round-robin over responders.
    turn: AtomicUsize,
    /// `ns.d.`: the prefix of the subject of a request to one router.
    direct: String,
}

/// The presences, and for each request event the routers that answer it (sorted by id, with
/// the subject to ask each on), so a request allocates nothing to pick one.
#[derive(Default)]
struct Table {
    presences: HashMap<String, Presence>,
    answering: HashMap<String, Vec<Answering>>,
}

/// One router answering one request event.
struct Answering {
    id: String,
    /// `ns.d.<router>.<event>`.
    subject: Subject,
}

impl Table {
    /// The routers answering `event` whose presence is fresh at `now`.
    fn alive<'a>(&'a self, event: &str, now: u64) -> impl Iterator<Item = &'a Answering> + 'a {
        let fresh = move |a: &&Answering| {
            self.presences.get(&a.id).is_some_and(|p| now.saturating_sub(p.at_ms) < ALIVE_MS)
        };
        self.answering.get(event).into_iter().flatten().filter(fresh)
    }
}

impl Peers {
    /// No router yet; requests to one router go to `<direct><router>.<event>`.
    pub(super) fn new(direct: &str) -> Self {
        Self { direct: direct.to_owned(), ..Self::default() }
    }

    /// Router `id` wrote `presence` (or left, with `None`).
    pub(super) fn set(&self, id: &str, presence: Option<Presence>) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        match presence {
            Some(presence) => {
                let same = table.presences.get(id).is_some_and(|p| p.responds == presence.responds);
                table.presences.insert(id.to_owned(), presence);
                if same {
                    return;
                }
            }
            None => {
                if table.presences.remove(id).is_none() {
                    return;
                }
            }
        }
        let mut answering: HashMap<String, Vec<Answering>> = HashMap::new();
        for (id, presence) in &table.presences {
            for event in &presence.responds {
                let subject = Subject::from(format!("{}{id}.{event}", self.direct));
                answering
                    .entry(event.clone())
                    .or_default()
                    .push(Answering { id: id.clone(), subject });
            }
        }
        answering.values_mut().for_each(|ids| ids.sort_by(|a, b| a.id.cmp(&b.id)));
        table.answering = answering;
    }

    /// Whether a router seen within `window_ms` subscribes to notification `event`.
    pub(super) fn subscribed(&self, event: &str, window_ms: u64) -> bool {
        let now = wall_ms();
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.presences.values().any(|p| {
            now.saturating_sub(p.at_ms) < window_ms && p.subscribes.iter().any(|s| s == event)
        })
    }

    /// How many live routers answer request `event`.
    pub(super) fn responders(&self, event: &str) -> usize {
        let now = wall_ms();
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.alive(event, now).count()
    }

    /// The subject of the next live router answering request `event`, round-robin.
    pub(super) fn responder(&self, event: &str) -> Option<Subject> {
        let now = wall_ms();
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        let count = table.alive(event, now).count();
        if count == 0 {
            return None;
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) % count;
        table.alive(event, now).nth(turn).map(|a| a.subject.clone())
    }

    /// The routers seen within `window_ms`, sorted by id.
    pub(super) fn list(&self, window_ms: u64) -> Vec<NatsPeer> {
        let now = wall_ms();
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        let mut peers: Vec<NatsPeer> = table
            .presences
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.at_ms) < window_ms)
            .map(|(id, p)| NatsPeer {
                id: id.clone(),
                connected: now.saturating_sub(p.at_ms) < ALIVE_MS,
                subscribes: p.subscribes.clone(),
                responds: p.responds.clone(),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: &str, fingerprint: u64) -> CatalogEntry {
        CatalogEntry { name: name.into(), kind: kind.into(), fingerprint }
    }

    #[test]
    fn a_conflict_names_the_event_and_the_other_router() {
        let ours = [entry("A", "notification", 1), entry("B", "request", 2)];
        assert_eq!(conflict(&ours, "x", &[entry("A", "notification", 1)]), None);
        assert_eq!(conflict(&ours, "x", &[entry("C", "request", 9)]), None);
        let message = conflict(&ours, "x", &[entry("B", "request", 3)]).unwrap();
        assert!(message.contains("event `B` is defined differently"), "{message}");
        assert!(message.contains("router `x`"), "{message}");
        assert!(conflict(&ours, "x", &[entry("A", "request", 1)]).is_some());
    }

    #[test]
    fn old_presences_are_neither_alive_nor_listed() {
        let peers = Peers::new("ns.d.");
        let presence = |at_ms| Presence {
            epoch: 1,
            at_ms,
            subscribes: vec!["Tick".into()],
            responds: vec!["Ask".into()],
            catalog: vec![],
        };
        peers.set("new", Some(presence(wall_ms())));
        peers.set("old", Some(presence(wall_ms() - 10_000)));
        assert_eq!(peers.responders("Ask"), 1);
        peers.set("other", Some(presence(wall_ms())));
        let turns: Vec<String> =
            (0..4).filter_map(|_| peers.responder("Ask")).map(|s| s.to_string()).collect();
        assert_eq!(turns, ["ns.d.new.Ask", "ns.d.other.Ask", "ns.d.new.Ask", "ns.d.other.Ask"]);
        peers.set("other", None);
        assert!(peers.subscribed("Tick", 60_000));
        let listed: Vec<(String, bool)> =
            peers.list(60_000).into_iter().map(|p| (p.id, p.connected)).collect();
        assert_eq!(listed, [("new".to_owned(), true), ("old".to_owned(), false)]);
        assert_eq!(peers.list(5_000).len(), 1);
        peers.set("new", None);
        assert_eq!(peers.responders("Ask"), 0);
    }
}
