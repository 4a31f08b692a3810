//! The seam between the conformance suite and one transport: how to start its hub, how a
//! router joins it, and what a router reports about its link.

use super::Proc;
use edri::{EdriBuilder, Running};
use std::time::Duration;

/// The secret every router of a test shares (unless a test gives one another).
pub const SECRET: &str = "test-secret";

/// One way of joining routers in different processes, as the tests drive it.
///
/// Everything else (child router processes, the cuttable link, the runner) is shared: a
/// transport only says how to start its hub, how a router joins it, and how to read a
/// router's link status.
pub trait Transport: Sync {
    /// A short name: the prefix of its cases' names (`switch::tunnels`).
    fn name(&self) -> &'static str;

    /// Starts the hub on `addr` (`127.0.0.1:0`: a free port) and returns once routers can
    /// join it. Started again on its previous address, it is the same hub restarted.
    fn start_hub(&self, addr: &str) -> Hub;

    /// `builder` joined to the hub as `join` says (in the test's process, or in a child
    /// router's process, which rebuilds `join` from its environment).
    fn join(&self, builder: EdriBuilder, join: &Join) -> EdriBuilder;

    /// What `running` reports about its link to the others.
    fn link(&self, running: &Running) -> Link;

    /// The prefix of the link's counters in `Running::metrics` (`<prefix>_lost_total`).
    fn metrics_prefix(&self) -> &'static str;

    /// Why case `case` does not hold for this transport (the runner reports it, by name, as
    /// not run), or `None` when it does.
    fn differs(&self, case: &str) -> Option<&'static str>;
}

/// A started hub (the switch process; a broker for other transports), killed when dropped.
pub struct Hub {
    /// Where routers connect (`host:port`).
    pub addr: String,
    pub proc: Proc,
}

impl Hub {
    /// Kills the hub (SIGKILL, by its pid).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts the hub again on its address, after [`Hub::kill`].
    pub fn restart(&mut self, transport: &dyn Transport) {
        let again = transport.start_hub(&self.addr);
        assert_eq!(again.addr, self.addr, "the hub came back on another address");
        *self = again;
    }
}

/// How one router joins: where it connects (the hub, or a cuttable proxy in front of it), as
/// whom, and the limits of what it keeps for routers that do not acknowledge.
#[derive(Debug, Clone)]
pub struct Join {
    pub addr: String,
    pub id: String,
    pub secret: String,
    pub outage_window: Option<Duration>,
    pub buffer: Option<usize>,
    pub in_flight: Option<u32>,
}

const ADDR_ENV: &str = "EDRI_TEST_JOIN_ADDR";
const SECRET_ENV: &str = "EDRI_TEST_JOIN_SECRET";
const WINDOW_ENV: &str = "EDRI_TEST_JOIN_OUTAGE_WINDOW_MS";
const BUFFER_ENV: &str = "EDRI_TEST_JOIN_BUFFER";
const IN_FLIGHT_ENV: &str = "EDRI_TEST_JOIN_IN_FLIGHT";

impl Join {
    /// Router `id` joining at `addr` with the shared secret and default limits.
    pub fn new(addr: &str, id: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            id: id.to_owned(),
            secret: SECRET.to_owned(),
            outage_window: None,
            buffer: None,
            in_flight: None,
        }
    }

    pub fn secret(mut self, secret: &str) -> Self {
        secret.clone_into(&mut self.secret);
        self
    }

    pub fn outage_window(mut self, window: Duration) -> Self {
        self.outage_window = Some(window);
        self
    }

    pub fn buffer(mut self, bytes: usize) -> Self {
        self.buffer = Some(bytes);
        self
    }

    pub fn in_flight(mut self, events: u32) -> Self {
        self.in_flight = Some(events);
        self
    }

    /// The environment that hands this join to a child router process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (ADDR_ENV, self.addr.clone()),
            (super::ROUTER_ENV, self.id.clone()),
            (SECRET_ENV, self.secret.clone()),
        ];
        if let Some(window) = self.outage_window {
            env.push((WINDOW_ENV, window.as_millis().to_string()));
        }
        if let Some(bytes) = self.buffer {
            env.push((BUFFER_ENV, bytes.to_string()));
        }
        if let Some(events) = self.in_flight {
            env.push((IN_FLIGHT_ENV, events.to_string()));
        }
        env
    }

    /// The join a parent handed to this child router process.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        let number = |name| var(name).map(|v| v.parse::<u64>().expect(name));
        Self {
            addr: var(ADDR_ENV).expect(ADDR_ENV),
            id: super::managers::router_id(),
            secret: var(SECRET_ENV).expect(SECRET_ENV),
            outage_window: number(WINDOW_ENV).map(Duration::from_millis),
            buffer: number(BUFFER_ENV).map(|b| usize::try_from(b).expect(BUFFER_ENV)),
            in_flight: number(IN_FLIGHT_ENV).map(|e| u32::try_from(e).expect(IN_FLIGHT_ENV)),
        }
    }
}

/// What a router reports about its link: the counters the suite asserts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Joined right now.
    pub connected: bool,
    /// The other routers it knows, and whether each is connected.
    pub peers: Vec<(String, bool)>,
    /// Given up: unacknowledged beyond the outage window, or for a router that left.
    pub lost: u64,
    /// Sent again to a router that restarted before acknowledging them.
    pub redelivered: u64,
    /// Received twice and dropped.
    pub duplicates: u64,
    /// Waiting for an acknowledgement.
    pub buffered: u64,
    /// Times the link to the hub was lost.
    pub reconnects: u64,
    /// Tunnels open with other routers.
    pub tunnels: u64,
}

impl Link {
    /// Whether router `id` is known and connected.
    pub fn is_up(&self, id: &str) -> bool {
        self.peers.iter().any(|(peer, up)| peer == id && *up)
    }

    /// Whether router `id` is known at all (connected or not).
    pub fn knows(&self, id: &str) -> bool {
        self.peers.iter().any(|(peer, _)| peer == id)
    }
}
