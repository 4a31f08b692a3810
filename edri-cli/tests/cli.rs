//! The `edri` binary against a real router: started here, with its API broker on 127.0.0.1
//! and a token, and the binary run as a child process for every command.

#![allow(missing_docs)]

use edri::api::Api;
use edri::prelude::*;
use edri::{Edri, Running};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// The bound of every wait in these tests.
const LIMIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "t0ken";

/// Adds two numbers; `b = 0` is refused, to show a failure.
#[event(request, http = "POST /add", ws)]
#[derive(Debug, Clone)]
pub struct Add {
    pub a: i64,
    pub b: i64,
    #[response]
    pub sum: i64,
}

/// Greets by name: a REST-only request with a path parameter and a query field.
#[event(request, http = "GET /greet/{name}")]
#[derive(Debug, Clone)]
pub struct Greet {
    pub name: String,
    pub loud: Option<bool>,
    #[response]
    pub text: String,
}

/// A notification pushed to WebSocket subscribers.
#[event(notification, ws)]
#[derive(Debug, Clone)]
pub struct Ping {
    pub n: u64,
}

#[derive(Default)]
pub struct Calc;

#[manager]
impl Calc {
    #[solve]
    fn add(&mut self, ev: &Add) -> Result<AddResponse, Failure> {
        if ev.b == 0 {
            return Err(Failure::invalid("b must not be 0 here"));
        }
        Ok(AddResponse { sum: ev.a + ev.b })
    }

    #[solve]
    fn greet(&mut self, ev: &Greet) -> GreetResponse {
        let text = format!("hello {}", ev.name);
        GreetResponse { text: if ev.loud == Some(true) { text.to_uppercase() } else { text } }
    }
}

#[derive(Default)]
pub struct Pinged {
    seen: u64,
}

#[manager]
impl Pinged {
    #[solve]
    fn ping(&mut self, _: &Ping) {
        self.seen += 1;
    }
}

async fn start() -> (Running, String) {
    let builder = Edri::builder()
        .only_explicit()
        .manager(Calc)
        .manager(Pinged::default())
        .api(Api::new("127.0.0.1:0").token(TOKEN));
    let running = tokio::time::timeout(LIMIT, builder.start())
        .await
        .expect("the router starts in time")
        .expect("the router starts");
    let addr = running.api_addr().expect("the API runs").to_string();
    (running, addr)
}

/// `f`, or a panic once [`LIMIT`] has passed.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("done within the limit")
}

async fn stop(running: Running) {
    within(running.shutdown()).await.expect("the router stops");
}

/// The `edri` binary with the token in its environment (`None`: no token at all).
fn edri(token: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edri"));
    command.args(args).env_remove("EDRI_TOKEN").kill_on_drop(true);
    if let Some(token) = token {
        command.env("EDRI_TOKEN", token);
    }
    command
}

/// Runs `edri` to its end (killed when it outlasts [`LIMIT`]).
async fn run(token: Option<&str>, args: &[&str]) -> Output {
    let output = edri(token, args).stdin(Stdio::null()).output();
    tokio::time::timeout(LIMIT, output).await.expect("edri ends in time").expect("edri runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails unless the command failed with `code` and one line on standard error containing
/// every piece of `expected`.
fn assert_fails(output: &Output, code: i32, expected: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("edri: "), "{stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "{piece:?} not in {stderr:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_is_printed() {
    let output = run(None, &["--version"]).await;
    assert!(output.status.success());
    assert_eq!(text(&output.stdout).trim(), format!("edri {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_lists_the_catalog() {
    let (running, addr) = start().await;
    let output = run(Some(TOKEN), &["events", &addr]).await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {stdout}"))
            .to_owned()
    };
    let add = line("Add");
    assert!(add.contains("request") && add.contains("POST /add") && add.contains("ws"), "{add}");
    assert!(add.contains("a, b") && add.contains("sum"), "{add}");
    assert!(line("Greet").contains("GET /greet/{name}"), "{stdout}");
    assert!(line("Ping").contains("notification"), "{stdout}");
    let json = run(Some(TOKEN), &["events", &addr, "--json"]).await;
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(document["events"].as_array().map(Vec::len), Some(3), "{document}");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_answers_over_the_websocket_and_over_rest() {
    let (running, addr) = start().await;
    let output = run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": 2, "b": 3}"#]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer, serde_json::json!({"sum": 5}));
    let output =
        run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": 2, "b": 4}"#, "--via", "http"]).await;
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer, serde_json::json!({"sum": 6}));
    let output =
        run(Some(TOKEN), &["call", &addr, "Greet", r#"{"name": "ann b", "loud": true}"#]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer, serde_json::json!({"text": "HELLO ANN B"}));
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_errors_are_one_clear_line() {
    let (running, addr) = start().await;
    let unknown = run(Some(TOKEN), &["call", &addr, "Nope", "{}"]).await;
    assert_fails(&unknown, 1, &["unknown event `Nope`", "Add, Greet, Ping"]);
    let bad_json = run(Some(TOKEN), &["call", &addr, "Add", "{\"a\": "]).await;
    assert_fails(&bad_json, 2, &["not valid JSON"]);
    let not_object = run(Some(TOKEN), &["call", &addr, "Add", "[1]"]).await;
    assert_fails(&not_object, 2, &["JSON object"]);
    let failure = run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": 1, "b": 0}"#]).await;
    assert_fails(&failure, 1, &["Add", "invalid", "b must not be 0"]);
    let rest_failure =
        run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": 1, "b": 0}"#, "--via", "http"]).await;
    assert_fails(&rest_failure, 1, &["400", "invalid", "b must not be 0"]);
    let bad_field = run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": "x", "b": 1}"#]).await;
    assert_fails(&bad_field, 1, &["invalid", "`a`"]);
    let missing_param = run(Some(TOKEN), &["call", &addr, "Greet", "{}"]).await;
    assert_fails(&missing_param, 2, &["needs the field `name`"]);
    stop(running).await;
    let unreachable = run(Some(TOKEN), &["call", &addr, "Add", "{}", "--timeout", "5"]).await;
    assert_fails(&unreachable, 1, &["cannot reach the router at", &addr]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_receives_notifications_sent_during_the_test() {
    let (running, addr) = start().await;
    let mut child = edri(Some(TOKEN), &["tail", &addr, "Ping", "--filter", "n=2", "--count", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edri tail starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let line = tokio::time::timeout(LIMIT, stderr.next_line()).await.expect("subscribed in time");
    assert_eq!(line.expect("stderr").as_deref(), Some("edri: subscribed to Ping"));
    let ctx = running.ctx();
    within(ctx.notify(Ping { n: 1 })).await.expect("notify");
    within(ctx.notify(Ping { n: 2 })).await.expect("notify");
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("tail exits after one notification")
        .expect("tail runs");
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let pushed: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(pushed, serde_json::json!({"event": "Ping", "data": {"n": 2}}));
    let unknown = run(Some(TOKEN), &["tail", &addr, "Add"]).await;
    assert_fails(&unknown, 1, &["Add", "not_found", "no notification `Add`"]);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn top_once_shows_every_manager() {
    let (running, addr) = start().await;
    let ctx = running.ctx();
    within(ctx.request(Add { a: 1, b: 1 }).into_future()).await.expect("a request");
    let output = run(Some(TOKEN), &["top", &addr, "--once"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with(&format!("edri top {addr}")), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no ANSI escapes with --once: {stdout:?}");
    let topology = running.topology();
    assert!(topology.managers.len() >= 2);
    for manager in &topology.managers {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{} ", manager.name)))
            .unwrap_or_else(|| panic!("{} missing from\n{stdout}", manager.name));
        assert!(line.contains(&format!("{}/{}", manager.depth, manager.capacity)), "{line}");
    }
    let calc = stdout.lines().find(|l| l.starts_with("Calc ")).expect("Calc");
    assert!(calc.split_whitespace().any(|w| w == "1"), "processed 1: {calc}");
    let add = stdout.lines().find(|l| l.starts_with("Add ")).expect("the Add event");
    assert!(add.contains("Calc::add"), "{add}");
    // The router reports who sent it: this test, from outside any manager.
    assert!(add.contains("outside 1"), "{add}");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_honoured() {
    let (running, addr) = start().await;
    for args in [
        &["events", addr.as_str()][..],
        &["top", &addr, "--once"],
        &["call", &addr, "Add", r#"{"a": 1, "b": 1}"#],
        &["tail", &addr, "Ping"],
    ] {
        let without = run(None, args).await;
        assert_fails(&without, 1, &["401", "wants a token", "EDRI_TOKEN"]);
        let wrong = run(Some("wrong"), args).await;
        assert_fails(&wrong, 1, &["401", "refused the token"]);
    }
    let flag = run(None, &["--token", TOKEN, "events", &addr]).await;
    assert!(flag.status.success(), "{}", text(&flag.stderr));
    let env = run(Some(TOKEN), &["call", &addr, "Add", r#"{"a": 1, "b": 1}"#]).await;
    assert!(env.status.success(), "{}", text(&env.stderr));
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn top_refreshes_until_q() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (running, addr) = start().await;
    let mut child = edri(Some(TOKEN), &["top", &addr, "--interval", "0.2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edri top starts");
    let mut stdout = child.stdout.take().expect("piped");
    // Read until two frames were drawn (each starts by clearing the screen).
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while text(&seen).matches("\u{1b}[2J").count() < 2 {
        let n = within(stdout.read(&mut buf)).await.expect("read");
        assert!(n > 0, "edri top ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let mut stdin = child.stdin.take().expect("piped");
    within(stdin.write_all(b"q")).await.expect("write q");
    let status = within(child.wait()).await.expect("edri top exits on q");
    assert!(status.success());
    let mut rest = Vec::new();
    within(stdout.read_to_end(&mut rest)).await.expect("read");
    seen.extend(rest);
    let shown = text(&seen);
    assert!(shown.starts_with("\u{1b}[?1049h"), "the alternate screen: {shown:?}");
    assert!(shown.ends_with("\u{1b}[?25h\u{1b}[?1049l"), "the screen is restored: {shown:?}");
    assert!(shown.contains("Calc ") && shown.contains("Pinged "), "{shown}");
    stop(running).await;
}
