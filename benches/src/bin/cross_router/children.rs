//! The child processes: the switch, the receivers, the relay, the NATS hub; each re-executes
//! this binary with a role.

use super::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Exits this (child) process when its stdin closes: the driver is gone, however it ended.
pub(crate) fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}

/// Role `switch`: the hub, in-process.
pub(crate) fn serve_switch(flavour: Flavour) {
    flavour.runtime().block_on(async {
        let server = match edri::switch::Server::bind("127.0.0.1:0", SECRET).await {
            Ok(server) => server,
            Err(e) => {
                println!("error: cannot listen: {e}");
                std::process::exit(3);
            }
        };
        match server.local_addr() {
            Ok(addr) => println!("listening on {addr}"),
            Err(e) => println!("error: no local address: {e}"),
        }
        let _ = std::io::stdout().flush();
        if let Err(e) = server.run().await {
            eprintln!("cross-router switch: {e}");
            std::process::exit(3);
        }
    });
}

/// How a router joins the others (given to the receiver through its environment).
#[derive(Debug, Clone)]
pub(crate) enum Join {
    /// The switch at this address.
    Switch(String),
    /// The NATS server at this URL, under this namespace.
    Nats { url: String, namespace: String },
    /// No router: the relay twin's relay at this address.
    Relay(String),
}

impl Join {
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Switch(addr) => vec![(SWITCH_ENV, addr.clone())],
            Self::Nats { url, namespace } => {
                vec![(NATS_ENV, url.clone()), (NAMESPACE_ENV, namespace.clone())]
            }
            Self::Relay(addr) => vec![(RELAY_ENV, addr.clone())],
        }
    }

    pub(crate) fn from_env() -> Self {
        let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        match std::env::var(SWITCH_ENV) {
            Ok(addr) => Self::Switch(addr),
            Err(_) => Self::Nats { url: var(NATS_ENV), namespace: var(NAMESPACE_ENV) },
        }
    }

    /// `builder` joined as router `id`.
    pub(crate) fn join(&self, builder: EdriBuilder, id: &str) -> EdriBuilder {
        match self {
            Self::Switch(addr) => {
                builder.switch(edri::switch::Switch::new(addr.clone()).secret(SECRET).id(id))
            }
            Self::Nats { url, namespace } => {
                builder.nats(edri::nats::Nats::new(url.clone()).namespace(namespace).id(id))
            }
            Self::Relay(_) => panic!("no router joins the relay twin"),
        }
    }
}

/// Role `receiver`: the counting and echoing router.
pub(crate) fn serve_receiver(flavour: Flavour) {
    let join = Join::from_env();
    flavour.runtime().block_on(async {
        let builder = Edri::builder()
            .only_explicit()
            .manager(Sink::default())
            .manager(Echoer)
            .manager(StreamSink);
        match join.join(builder, RECEIVER).start().await {
            Ok(running) => {
                println!("ready");
                let _ = std::io::stdout().flush();
                running.wait_for_stop_signal().await;
                let _ = running.shutdown().await;
            }
            Err(e) => {
                println!("error: {e}");
                std::process::exit(3);
            }
        }
    });
}

/// Role `raw-receiver`: the raw twin's receiver.
pub(crate) fn serve_raw_receiver(flavour: Flavour) {
    let Join::Nats { url, namespace } = Join::from_env() else {
        panic!("the raw receiver needs {NATS_ENV}");
    };
    if let Err(e) = flavour.runtime().block_on(raw::serve(&url, &namespace)) {
        println!("error: {e}");
        std::process::exit(3);
    }
}

/// A child process: its stdin closed when dropped (it exits then), killed by its pid
/// (SIGKILL) if it has not exited within `STOP_LIMIT`.
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    /// The lines it prints on stdout.
    pub(crate) lines: mpsc::Receiver<String>,
}

/// How long a child may take to exit once its stdin closed.
pub(crate) const STOP_LIMIT: Duration = Duration::from_secs(5);

impl Proc {
    /// Re-executes this binary as `role`, with `env`.
    pub(crate) fn start(role: &'static str, flavour: Flavour, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .env(ROLE_ENV, role)
            .env(FLAVOUR_ENV, flavour.arg())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start the {role}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { name: role, child, lines }
    }

    /// Its next line on stdout, waited for at most `limit`.
    pub(crate) fn line(&self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => line.trim().to_owned(),
            Err(e) => panic!("the {} printed no line within {limit:?}: {e}", self.name),
        }
    }

    /// Its first line, which must start with `prefix`: the rest.
    pub(crate) fn expect(&self, prefix: &str) -> String {
        let line = self.line(START_LIMIT);
        match line.strip_prefix(prefix) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("the {} said `{line}`, not `{prefix}...`", self.name),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The `nats` guard kills its server when its stdin closes: give it the time to.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Role `relay` or `relay-receiver`: the relay twin's processes.
pub(crate) fn serve_relay(role: &str, flavour: Flavour) {
    let served = flavour.runtime().block_on(async {
        if role == "relay" {
            relay::serve().await
        } else {
            let addr = std::env::var(RELAY_ENV).map_err(|_| format!("{RELAY_ENV} is not set"))?;
            relay::receive(&addr).await
        }
    });
    if let Err(e) = served {
        println!("error: {e}");
        std::process::exit(3);
    }
}

/// The bench's `nats-server`: its guard process and client URL.
pub(crate) struct Hub {
    /// Its guard process (the server is the guard's child).
    pub(crate) guard: Proc,
    pub(crate) url: String,
}

impl Hub {
    pub(crate) fn start() -> Self {
        let guard = Proc::start("nats", Flavour::Current, &[]);
        let said = guard.expect("listening on ");
        let (addr, version) = said.split_once(' ').unwrap_or((&said, "?"));
        println!("nats-server: {version} on {addr}, JetStream with file storage in a temp dir");
        Self { url: format!("nats://{addr}"), guard }
    }
}
