//! The other routers, as the switch described them: who is connected, what each subscribes
//! to and answers; and what the connector does when the switch reports a change.

use super::Connector;
use super::metrics::add;
use crate::registry::EventRegistration;
use crate::router::{FastMap, Outbound};
use crate::switch::Peer;
use crate::switch::frame::PeerInfo;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The other routers, shared by the connector's tasks, and the round-robin of requests.
#[derive(Default)]
pub(super) struct PeerTable {
    table: RwLock<Peers>,
    round_robin: AtomicUsize,
}

impl PeerTable {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Peers> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Peers> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// One router that answers `event`: connected ones first, round-robin.
    pub(super) fn responder(&self, event: Outbound) -> Option<Arc<str>> {
        let pick = self.round_robin.fetch_add(1, Ordering::Relaxed);
        self.read().responder(event, pick)
    }
}

/// Another router's events by its wire ids: this router's registration of each, or why an
/// item under that id is refused (not declared here, or declared differently).
pub(super) type Events = Arc<[Result<&'static EventRegistration, Arc<str>>]>;

/// The routers of some events.
type Routers = Arc<[Arc<str>]>;

/// The other routers.
#[derive(Default)]
pub(super) struct Peers {
    known: HashMap<Arc<str>, Known>,
    /// Notification name → routers with subscribers.
    subscribers: FastMap<String, Routers>,
    /// Request name → routers that answer it.
    responders: FastMap<String, Routers>,
    /// `subscribers` by this router's wire ids (the hot path looks up no name).
    subscribers_by_wire: Box<[Option<Routers>]>,
    /// `responders` by this router's wire ids.
    responders_by_wire: Box<[Option<Routers>]>,
}

struct Known {
    info: PeerInfo,
    /// Its events by its wire ids, for its run `info.epoch`.
    events: Events,
    up: bool,
    /// When it went down (ms on the connector's clock).
    down_since: u64,
}

/// `by_name` indexed by this router's wire ids.
fn by_wire(by_name: &FastMap<String, Routers>) -> Box<[Option<Routers>]> {
    let mut out = vec![None; crate::peering::wire_catalog().len()];
    for (name, routers) in by_name {
        if let Some(slot) = crate::peering::wire_id(name).and_then(|id| out.get_mut(id as usize)) {
            *slot = Some(routers.clone());
        }
    }
    out.into_boxed_slice()
}

/// The routers of `event` in `by_wire`, or by name for an event without a wire id.
fn lookup<'a>(
    by_wire: &'a [Option<Routers>],
    by_name: &'a FastMap<String, Routers>,
    event: Outbound,
) -> Option<&'a Routers> {
    match by_wire.get(event.wire as usize) {
        Some(routers) => routers.as_ref(),
        None => by_name.get(event.name),
    }
}

impl Peers {
    fn rebuild(&mut self) {
        let mut subscribers: FastMap<String, Vec<Arc<str>>> = FastMap::default();
        let mut responders: FastMap<String, Vec<Arc<str>>> = FastMap::default();
        let mut ids: Vec<&Arc<str>> = self.known.keys().collect();
        ids.sort();
        for id in ids {
            let info = &self.known[id].info;
            for name in &info.subscribes {
                subscribers.entry(name.clone()).or_default().push(id.clone());
            }
            for name in &info.responds {
                responders.entry(name.clone()).or_default().push(id.clone());
            }
        }
        self.subscribers = subscribers.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.responders = responders.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.subscribers_by_wire = by_wire(&self.subscribers);
        self.responders_by_wire = by_wire(&self.responders);
    }

    /// The events of router `id`'s run `epoch`, by its wire ids (`None`: not that run).
    pub(super) fn events(&self, id: &str, epoch: u64) -> Option<Events> {
        self.known.get(id).filter(|k| k.info.epoch == epoch).map(|k| k.events.clone())
    }

    pub(super) fn is_up(&self, id: &str) -> bool {
        self.known.get(id).is_some_and(|k| k.up)
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.known.keys()
    }

    /// The run of router `id` (0 when unknown).
    pub(super) fn epoch(&self, id: &str) -> u64 {
        self.known.get(id).map_or(0, |k| k.info.epoch)
    }

    /// The routers with subscribers for notification `event`.
    pub(super) fn subscribers(&self, event: Outbound) -> Option<&Routers> {
        lookup(&self.subscribers_by_wire, &self.subscribers, event)
    }

    /// The routers that answer request (or accept tunnel) `event`.
    pub(super) fn responders(&self, event: Outbound) -> Option<&Routers> {
        lookup(&self.responders_by_wire, &self.responders, event)
    }

    /// The `pick`th router (modulo) that answers `event`, among the connected ones if any is.
    fn responder(&self, event: Outbound, pick: usize) -> Option<Arc<str>> {
        let all = lookup(&self.responders_by_wire, &self.responders, event)?;
        if let [one] = &**all {
            return Some(one.clone());
        }
        let up = all.iter().filter(|id| self.is_up(id)).count();
        if up == 0 {
            all.get(pick % all.len()).cloned()
        } else {
            all.iter().filter(|id| self.is_up(id)).nth(pick % up).cloned()
        }
    }

    /// Router `info` is connected; whether it is a new run of a router known before.
    fn up(&mut self, info: PeerInfo) -> bool {
        let id: Arc<str> = info.id.as_str().into();
        let epoch = info.epoch;
        let events = match self.known.get(&id) {
            // The same run: the same catalog.
            Some(known) if known.info.epoch == epoch => known.events.clone(),
            _ => crate::peering::translate(&info.catalog).into(),
        };
        let old = self.known.insert(id, Known { info, events, up: true, down_since: 0 });
        old.is_some_and(|old| old.info.epoch != epoch)
    }

    /// The switch's list replaces ours (at `now`): the routers listed are up, the others
    /// down. Returns the routers listed as a new run of one known before.
    fn replace(&mut self, list: Vec<PeerInfo>, now: u64) -> Vec<Arc<str>> {
        for known in self.known.values_mut() {
            if known.up {
                known.up = false;
                known.down_since = now;
            }
        }
        let mut restarted = Vec::new();
        for info in list {
            let id: Arc<str> = info.id.as_str().into();
            if self.up(info) {
                restarted.push(id);
            }
        }
        self.rebuild();
        restarted
    }

    fn down(&mut self, id: &str, now: u64) {
        if let Some(known) = self.known.get_mut(id) {
            known.up = false;
            known.down_since = now;
        }
    }

    fn remove(&mut self, id: &str) {
        self.known.remove(id);
        self.rebuild();
    }

    /// The routers down for longer than `outage_ms` at `now`.
    fn away(&self, now: u64, outage_ms: u64) -> Vec<Arc<str>> {
        self.known
            .iter()
            .filter(|(_, k)| !k.up && now.saturating_sub(k.down_since) > outage_ms)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The routers, by id, for [`SwitchStatus`](crate::switch::SwitchStatus).
    pub(super) fn list(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self
            .known
            .values()
            .map(|k| Peer {
                id: k.info.id.clone(),
                connected: k.up,
                subscribes: k.info.subscribes.clone(),
                responds: k.info.responds.clone(),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }
}

impl Connector {
    /// Joined: the switch's list of routers replaces ours. Everything unacknowledged is sent
    /// again (the switch dropped whatever was in flight).
    pub(super) fn joined(&self, list: Vec<PeerInfo>) {
        let now = self.now();
        let runs: Vec<(String, u64)> = list.iter().map(|i| (i.id.clone(), i.epoch)).collect();
        for (id, epoch) in &runs {
            self.tunnels.end(id, Some(*epoch));
        }
        for id in self.peers.write().replace(list, now) {
            self.restarted(&id);
        }
        let peers = self.peers.read();
        let again = self.outbox().rejoin(peers.ids(), |id| peers.is_up(id), now);
        drop(peers);
        add(&self.stats.resent, again);
        self.wake.notify_one();
    }

    /// Router `info` joined the switch (or came back).
    pub(super) fn peer_up(&self, info: PeerInfo) {
        self.tunnels.end(&info.id, Some(info.epoch));
        let id: Arc<str> = info.id.as_str().into();
        let restarted = {
            let mut peers = self.peers.write();
            let restarted = peers.up(info);
            peers.rebuild();
            restarted
        };
        if restarted {
            self.restarted(&id);
        }
        let again = self.outbox().up(id, self.now());
        add(&self.stats.resent, again);
        self.wake.notify_one();
    }

    /// Router `id` is back as a new run: what it was sent but had not acknowledged goes to
    /// the new run. The old run may have handled some of it before it stopped (it acknowledges
    /// only handled events): at most these are handled twice, and they are counted.
    fn restarted(&self, id: &str) {
        let again = self.outbox().in_flight(id);
        if again > 0 {
            add(&self.stats.redelivered, again);
            tracing::warn!(
                router = id,
                events = again,
                "router restarted before acknowledging events it was sent; they go to its new \
                 run and may be handled twice"
            );
        }
    }

    /// Router `id` lost its connection to the switch; it may come back.
    pub(super) fn peer_down(&self, id: &str) {
        self.peers.write().down(id, self.now());
        self.outbox().down(id);
    }

    /// A router left for good (or was down beyond the outage window): forget it; what it had
    /// not acknowledged is lost, and said so.
    pub(super) fn forget(&self, id: &str, why: &str) {
        self.tunnels.end(id, None);
        self.peers.write().remove(id);
        let Some(lost) = self.outbox().remove(id) else { return };
        self.space.notify_waiters();
        if lost > 0 {
            add(&self.stats.lost, lost);
            tracing::warn!(router = id, lost, "{why}; its unacknowledged events are lost");
        }
    }

    /// Forgets the routers away beyond the outage window.
    pub(super) fn forget_away(&self, now: u64) {
        let away = self.peers.read().away(now, self.outage_ms);
        for id in away {
            self.forget(&id, "the router stayed away beyond the outage window");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, epoch: u64, responds: &[&str]) -> PeerInfo {
        PeerInfo {
            id: id.into(),
            epoch,
            catalog: Vec::new(),
            subscribes: vec!["Tick".into()],
            responds: responds.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn named(name: &'static str) -> Outbound {
        Outbound { name, wire: Outbound::NO_WIRE }
    }

    fn names(ids: &[Arc<str>]) -> Vec<&str> {
        ids.iter().map(|id| &**id).collect()
    }

    #[test]
    fn requests_go_round_robin_to_connected_responders_first() {
        let mut peers = Peers::default();
        let list = vec![info("c", 1, &["Get"]), info("a", 1, &["Get"]), info("b", 1, &[])];
        assert!(peers.replace(list, 0).is_empty());
        assert_eq!(names(peers.subscribers(named("Tick")).unwrap()), ["a", "b", "c"]);
        let picks: Vec<_> = (0..3).map(|i| peers.responder(named("Get"), i).unwrap()).collect();
        assert_eq!(names(&picks), ["a", "c", "a"]);
        peers.down("a", 5);
        let picks: Vec<_> = (0..2).map(|i| peers.responder(named("Get"), i).unwrap()).collect();
        assert_eq!(names(&picks), ["c", "c"]);
        peers.down("c", 5);
        let picks: Vec<_> = (0..2).map(|i| peers.responder(named("Get"), i).unwrap()).collect();
        assert_eq!(names(&picks), ["a", "c"], "all down: round-robin over all");
        assert_eq!(peers.responder(named("Put"), 0), None);
    }

    #[test]
    fn a_new_list_marks_the_others_down_and_tells_who_restarted() {
        let mut peers = Peers::default();
        peers.replace(vec![info("a", 1, &[]), info("b", 1, &[])], 0);
        let restarted = peers.replace(vec![info("a", 2, &[]), info("c", 1, &[])], 10);
        assert_eq!(names(&restarted), ["a"]);
        let up: Vec<(String, bool)> =
            peers.list().into_iter().map(|p| (p.id, p.connected)).collect();
        let expected = [("a", true), ("b", false), ("c", true)].map(|(id, up)| (id.into(), up));
        assert_eq!(up, expected);
        assert_eq!(peers.epoch("a"), 2);
        assert!(peers.away(10 + 60_000, 60_000).is_empty());
        assert_eq!(names(&peers.away(10 + 60_001, 60_000)), ["b"]);
        peers.remove("b");
        assert_eq!(names(peers.subscribers(named("Tick")).unwrap()), ["a", "c"]);
    }
}
