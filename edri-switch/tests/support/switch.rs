//! The switch transport: the `edri-switch` binary as the hub, `EdriBuilder::switch` to join.

use super::Proc;
use super::transport::{Hub, Join, Link, SECRET, Transport};
use edri::{EdriBuilder, Running};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;

/// Routers joined through an `edri-switch` process.
pub struct SwitchTransport;

impl Transport for SwitchTransport {
    fn name(&self) -> &'static str {
        "switch"
    }

    fn start_hub(&self, addr: &str) -> Hub {
        start(addr, false).0
    }

    fn join(&self, builder: EdriBuilder, join: &Join) -> EdriBuilder {
        let mut config =
            edri::switch::Switch::new(join.addr.as_str()).secret(&join.secret).id(&join.id);
        if let Some(window) = join.outage_window {
            config = config.outage_window(window);
        }
        if let Some(bytes) = join.buffer {
            config = config.buffer(bytes);
        }
        if let Some(events) = join.in_flight {
            config = config.in_flight(events);
        }
        builder.switch(config)
    }

    fn link(&self, running: &Running) -> Link {
        let status = running.switch().expect("a router joined to a switch");
        Link {
            connected: status.connected,
            peers: status.peers.into_iter().map(|p| (p.id, p.connected)).collect(),
            lost: status.lost,
            redelivered: status.redelivered,
            duplicates: status.duplicates,
            buffered: status.buffered,
            reconnects: status.reconnects,
            tunnels: status.tunnels,
        }
    }

    fn metrics_prefix(&self) -> &'static str {
        "edri_switch"
    }

    fn differs(&self, _case: &str) -> Option<&'static str> {
        None
    }
}

impl SwitchTransport {
    /// A switch whose log (standard error, `RUST_LOG=info`) comes line by line.
    pub fn start_logged(addr: &str) -> (Hub, Receiver<String>) {
        let (hub, log) = start(addr, true);
        (hub, log.expect("piped"))
    }
}

/// Starts `edri-switch` on `addr` and waits for its first line.
fn start(addr: &str, logged: bool) -> (Hub, Option<Receiver<String>>) {
    let stderr = if logged { Stdio::piped() } else { Stdio::inherit() };
    let mut child = Command::new(env!("CARGO_BIN_EXE_edri-switch"))
        .args(["--listen", addr])
        .env("EDRI_SWITCH_SECRET", SECRET)
        .env("RUST_LOG", if logged { "info" } else { "warn" })
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start edri-switch");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("edri-switch listening on ").expect(&line).to_owned();
    let log = child.stderr.take().map(|stderr| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        rx
    });
    (Hub { addr, proc: Proc { child } }, log)
}
