//! The `edri-switch` command line: `--version`, the secret from the environment, and the
//! `--metrics` endpoint (`/status`, `/metrics`) seeing a router join and a wrong secret
//! refused. The switch is the real binary; the routers run in this process.

#![allow(missing_docs)]

use edri::prelude::*;
use edri::switch::Switch;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bound of every wait in these tests.
const LIMIT: Duration = Duration::from_secs(20);
const SECRET: &str = "the switch secret";

/// A notification, so that the router has something to join with.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Beep;

#[derive(Default)]
pub struct Listener;

#[manager]
impl Listener {
    #[solve]
    fn beep(&mut self, _: &Beep) {}
}

/// An `edri-switch` started by this test, killed (by its own pid) when dropped.
struct SwitchProc {
    child: Child,
    listen: String,
    metrics: String,
}

impl Drop for SwitchProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edri-switch --listen 127.0.0.1:0 --metrics 127.0.0.1:0`, the secret in its
/// environment, and reads the two addresses it prints.
fn start_switch() -> SwitchProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edri-switch"))
        .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .env("EDRI_SWITCH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("edri-switch starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = |prefix: &str| {
        let line = rx.recv_timeout(LIMIT).expect("edri-switch prints its addresses in time");
        line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line:?}")).to_owned()
    };
    let listen = line("edri-switch listening on ");
    let metrics = line("edri-switch metrics on ");
    SwitchProc { child, listen, metrics }
}

async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().timeout(LIMIT).build().expect("client");
    let response = client.get(url).send().await.expect("the metrics endpoint answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn status(metrics: &str) -> serde_json::Value {
    let (code, body) = get(&format!("http://{metrics}/status")).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Polls `/status` until `done` holds (bounded by [`LIMIT`]).
async fn status_until(
    metrics: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let status = status(metrics).await;
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "not reached in {LIMIT:?}: {status:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(listen: &str, id: &str, secret: &str) -> edri::Result<edri::Running> {
    let start = edri::Edri::builder()
        .only_explicit()
        .manager(Listener)
        .switch(Switch::new(listen).secret(secret).id(id))
        .start();
    tokio::time::timeout(LIMIT, start).await.expect("start ends in time")
}

/// Runs `edri-switch` with `args` to its end, killed when it outlasts [`LIMIT`].
async fn run(args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_edri-switch"));
    command.args(args).env_remove("EDRI_SWITCH_SECRET").kill_on_drop(true);
    tokio::time::timeout(LIMIT, command.output()).await.expect("in time").expect("it runs")
}

#[tokio::test]
async fn version_is_printed() {
    let output = run(&["--version"]).await;
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), format!("edri-switch {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn a_missing_secret_is_one_clear_line() {
    let output = run(&["--listen", "127.0.0.1:0"]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no secret") && stderr.contains("EDRI_SWITCH_SECRET"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_connected_routers_and_refusals() {
    let switch = start_switch();
    let empty = status(&switch.metrics).await;
    assert_eq!(empty["routers"], serde_json::json!([]), "{empty:#}");
    assert_eq!(empty["refusals"], 0, "{empty:#}");

    let good = join(&switch.listen, "good", SECRET).await.expect("the right secret joins");
    let wrong = join(&switch.listen, "intruder", "not the secret").await;
    let error = wrong.expect_err("a wrong secret is refused").to_string();
    assert!(error.contains("authentication failed"), "{error}");

    // Routers ping every second: frames come in on the router's connection.
    let status = status_until(&switch.metrics, |s| {
        s["refusals"] == 1 && s["routers"][0]["frames_in"].as_u64().is_some_and(|n| n > 0)
    })
    .await;
    let routers = status["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 1, "{status:#}");
    assert_eq!(routers[0]["id"], "good");
    assert!(routers[0]["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{status:#}");
    assert_eq!(routers[0]["subscribes"], serde_json::json!(["Beep"]));
    assert_eq!(status["refusals_by_reason"], serde_json::json!({"secret": 1}));
    assert_eq!(status["joins"], 1);
    for key in ["frames_in", "bytes_in", "frames_out", "bytes_out"] {
        assert!(status[key].as_u64().is_some_and(|n| n > 0), "{key}: {status:#}");
    }

    let (code, text) = get(&format!("http://{}/metrics", switch.metrics)).await;
    assert_eq!(code, 200);
    assert!(text.contains("edri_switch_server_routers 1"), "{text}");
    assert!(text.contains("edri_switch_server_refusals_total{reason=\"secret\"} 1"), "{text}");
    assert!(
        text.contains("edri_switch_server_router_frames_total{router=\"good\",direction=\"in\"}"),
        "{text}"
    );
    let (code, _) = get(&format!("http://{}/nothing", switch.metrics)).await;
    assert_eq!(code, 404);

    tokio::time::timeout(LIMIT, good.shutdown()).await.expect("in time").expect("shutdown");
    status_until(&switch.metrics, |s| s["routers"] == serde_json::json!([])).await;
}
