//! The bench's own `nats-server` with JetStream: on a free port of 127.0.0.1, with a fresh
//! store in the temporary directory, under a guard process (role `nats`) of this binary. The
//! guard starts the server, prints `listening on <addr> <version>`, and once its stdin closes
//! (the driver ended, however it ended) kills the server by its pid and removes the store.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names the `nats-server` binary to run (2.10 or newer).
pub const SERVER_ENV: &str = "EDRI_NATS_SERVER";
/// Where the VMs here have a recent `nats-server` (Debian's `/usr/sbin` one is 2.9: too old
/// for the key-value and stream requests of async-nats 0.42).
const OPT_SERVER: &str = "/opt/nats-server/bin/nats-server";
/// How long the server may take to listen.
const LISTEN_LIMIT: Duration = Duration::from_secs(10);

/// The `nats-server` to run: `$EDRI_NATS_SERVER`, else `/opt/nats-server/bin/nats-server`,
/// else `nats-server` on the `PATH`, whichever is 2.10 or newer; with its version text.
fn binary() -> Result<(PathBuf, String), String> {
    if let Some(path) = std::env::var_os(SERVER_ENV) {
        let path = PathBuf::from(path);
        let version =
            version(&path).map_err(|e| format!("{SERVER_ENV}={}: {e}", path.display()))?;
        return Ok((path, version));
    }
    let mut tried = Vec::new();
    for candidate in [Path::new(OPT_SERVER), Path::new("nats-server")] {
        match version(candidate) {
            Ok(version) => return Ok((candidate.to_owned(), version)),
            Err(e) => tried.push(format!("{}: {e}", candidate.display())),
        }
    }
    Err(format!("no nats-server 2.10 or newer ({}); set {SERVER_ENV}", tried.join("; ")))
}

/// The version text of `binary` if it runs and is `nats-server` 2.10 or newer.
fn version(binary: &Path) -> Result<String, String> {
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it ({e})"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let number = text.rsplit('v').next().unwrap_or_default();
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (2, 10) { Ok(text) } else { Err(format!("found `{text}`")) }
}

/// Role `nats`: runs the server until this process's stdin closes.
pub fn guard() -> ! {
    let fail = |message: String| -> ! {
        println!("error: {message}");
        let _ = std::io::stdout().flush();
        std::process::exit(3);
    };
    let (binary, version) = binary().unwrap_or_else(|e| fail(e));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(format!("no free port: {e}")));
    let store =
        std::env::temp_dir().join(format!("edri-cross-bench-{}-{port}", std::process::id()));
    let mut server = Command::new(&binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(format!("cannot start {}: {e}", binary.display())));
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + LISTEN_LIMIT;
    while TcpStream::connect(&addr).is_err() {
        if let Ok(Some(status)) = server.try_wait() {
            fail(format!("{} exited at start: {status}", binary.display()));
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            fail(format!("{} did not listen on {addr} within {LISTEN_LIMIT:?}", binary.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("listening on {addr} {version}");
    let _ = std::io::stdout().flush();
    // Until the driver's end of stdin closes.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&store);
    std::process::exit(0);
}
