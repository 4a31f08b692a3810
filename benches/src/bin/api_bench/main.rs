//! REST through EDRI's API broker against axum routes served by the same process, on the
//! same tokio runtime, driven by `wrk` over 127.0.0.1 (issue 18; target in `shared/BENCH.md`:
//! ≥ 0.85 × the axum route).
//!
//! One process serves:
//! * the **broker** (`Edri::builder().api(..)`): `POST /greet`, a request event whose handler
//!   answers `{"message": "Hello, <name>!"}`, and `GET /hello`, a hello-world axum route
//!   merged into it with [`Api::merge`] (what the broker's connection layer costs alone);
//! * the **twins**, plain `axum::serve` on a second listener of the same runtime: `GET /hello`
//!   (hello world, the issue's twin) and `POST /json` (parses the same JSON body into a
//!   struct and answers the same JSON: the same work as the event, without the broker).
//!
//! Each run gives every target `--duration` seconds of `wrk`, in `--slices` turns that
//! alternate them (axum hello, edri REST, axum JSON, broker hello, axum hello, …), so that
//! the load of the shared machine falls on all alike; `--runs` runs. It prints every run's
//! rates, the CPU time the process spent per request (robust to other load on the machine),
//! latencies (p50 the slices' mean, p90 and p99 the worst slice's) and ratios, then the
//! medians of the per-run ratios.
//!
//! ```text
//! cargo run --release -p edri-benches --bin api-bench -- [--flavour multi|current]
//!     [--runs 3] [--duration 5] [--slices 5] [--connections 200] [--threads 2] [--serve <seconds>]
//! ```

mod wrk;

use edri::api::Api;
use edri::api::axum::serve::ListenerExt as _;
use edri::api::axum::{self, Router, body::Bytes, http::header, response::IntoResponse};
use edri::prelude::*;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wrk::{Load, Report};

/// `POST /greet` through the broker: `{"name": ..}` → `{"message": "Hello, <name>!"}`.
#[event(request, http = "POST /greet")]
#[derive(Debug, Clone)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
    /// The greeting.
    #[response]
    pub message: String,
}

/// Answers [`Greet`].
pub struct Greeter;

#[manager]
impl Greeter {
    #[solve]
    fn greet(&mut self, ev: Greet) -> GreetResponse {
        GreetResponse { message: greeting(&ev.name) }
    }
}

fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

/// The body every POST sends, and what both JSON routes answer to it.
const BODY: &str = r#"{"name":"world"}"#;
const ANSWER: &str = r#"{"message":"Hello, world!"}"#;

/// The JSON twin's input and output: the same shapes as [`Greet`] and its response.
#[derive(serde::Deserialize)]
struct GreetIn {
    name: String,
}

#[derive(serde::Serialize)]
struct GreetOut {
    message: String,
}

async fn hello() -> &'static str {
    "Hello, World!"
}

/// What `axum::Json` does, without its feature: decode, answer JSON (400 on bad input).
async fn json_twin(body: Bytes) -> axum::response::Response {
    match serde_json::from_slice::<GreetIn>(&body) {
        Ok(ask) => {
            let out = GreetOut { message: greeting(&ask.name) };
            match serde_json::to_vec(&out) {
                Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
                Err(e) => {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                }
            }
        }
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// One URL measured in every run.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    post: bool,
}

impl Target {
    fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Multi,
    Current,
}

struct Options {
    flavour: Flavour,
    runs: usize,
    /// Slices per run: each target gets `load.duration` per run, in this many `wrk` runs.
    slices: u32,
    load: Load,
    /// `--serve <seconds>`: only serve (for a profiler, or a load of one's own), then stop.
    serve: Option<Duration>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        flavour: Flavour::Multi,
        runs: 3,
        slices: 5,
        load: Load { connections: 200, threads: 2, duration: Duration::from_secs(5) },
        serve: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        let number = |text: String| text.parse::<u32>().map_err(|e| format!("{text}: {e}"));
        match flag.as_str() {
            "--flavour" => {
                o.flavour = match value()?.as_str() {
                    "multi" => Flavour::Multi,
                    "current" => Flavour::Current,
                    other => return Err(format!("unknown flavour `{other}`: multi or current")),
                }
            }
            "--runs" => o.runs = number(value()?)?.clamp(1, 20) as usize,
            "--duration" => {
                o.load.duration = Duration::from_secs(number(value()?)?.clamp(1, 60).into());
            }
            "--connections" => o.load.connections = number(value()?)?.clamp(1, 1000),
            "--slices" => o.slices = number(value()?)?.clamp(1, 60),
            "--threads" => o.load.threads = number(value()?)?.clamp(1, 16),
            "--serve" => o.serve = Some(Duration::from_secs(number(value()?)?.into())),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// Starts the broker and the twins on a runtime of `flavour`, on a thread of their own;
/// answers the broker's and the twins' addresses, and a sender that stops them.
fn serve(
    flavour: Flavour,
) -> Result<
    (SocketAddr, SocketAddr, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>),
    String,
> {
    let rt = match flavour {
        Flavour::Current => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Flavour::Multi => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        }
    }
    .map_err(|e| e.to_string())?;
    let (ready, addrs) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            let api = Api::new("127.0.0.1:0")
                .max_connections(1024)
                .merge(Router::new().route("/hello", axum::routing::get(hello)));
            let running =
                match Edri::builder().only_explicit().manager(Greeter).api(api).start().await {
                    Ok(running) => running,
                    Err(e) => {
                        return drop(ready.send(Err(format!("the router did not start: {e}"))));
                    }
                };
            let twin = Router::new()
                .route("/hello", axum::routing::get(hello))
                .route("/json", axum::routing::post(json_twin));
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(listener) => listener,
                Err(e) => return drop(ready.send(Err(format!("cannot bind the twin: {e}")))),
            };
            let twin_addr = listener.local_addr().expect("a bound listener has an address");
            // As the broker does: no Nagle delay on its sockets.
            let listener = listener.tap_io(|tcp| drop(tcp.set_nodelay(true)));
            tokio::spawn(async move { axum::serve(listener, twin).await });
            let broker = running.api_addr().expect("the broker listens");
            let _ = ready.send(Ok((broker, twin_addr)));
            // Parked on a blocking thread, so the runtime's own threads stay free.
            let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
            let _ = running.shutdown().await;
        });
    });
    let (broker, twin) = addrs.recv().map_err(|_| "the server thread ended".to_owned())??;
    Ok((broker, twin, stop, thread))
}

/// One request over a fresh connection, to check what a target answers before loading it.
fn check(target: &Target) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect(target.addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let request = if target.post {
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            target.path,
            target.addr,
            BODY.len()
        )
    } else {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            target.path, target.addr
        )
    };
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let expected = if target.post { ANSWER } else { "Hello, World!" };
    if answer.starts_with("HTTP/1.1 200") && answer.ends_with(expected) {
        Ok(())
    } else {
        Err(format!("{} answered, not `{expected}`:\n{answer}", target.url()))
    }
}

/// The Lua script that makes wrk's requests the POSTs of [`BODY`].
fn post_script() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("edri-api-bench-{}.lua", std::process::id()));
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = '{BODY}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    std::fs::write(&path, lua).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> ExitCode {
    match bench() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("api-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the series; `Ok(false)` when some response was an error.
fn bench() -> Result<bool, String> {
    let o = options()?;
    // Find wrk before starting anything.
    std::process::Command::new("wrk").arg("--version").output().map_err(|e| wrk::missing(&e))?;
    // What `#[edri::main]` installs: logs at `info` (RUST_LOG overrides).
    edri::tracing::init();
    let (broker, twin, stop, thread) = serve(o.flavour)?;
    let targets = [
        Target { name: "axum hello (twin)", addr: twin, path: "/hello", post: false },
        Target { name: "edri REST POST /greet", addr: broker, path: "/greet", post: true },
        Target { name: "axum JSON (twin)", addr: twin, path: "/json", post: true },
        Target { name: "broker + merged hello", addr: broker, path: "/hello", post: false },
    ];
    for target in &targets {
        check(target)?;
    }
    if let Some(time) = o.serve {
        println!(
            "serving for {time:?}: broker http://{broker} (/greet, /hello), twin http://{twin} (/hello, /json)"
        );
        std::thread::sleep(time);
        let _ = stop.send(());
        let _ = thread.join();
        return Ok(true);
    }
    let script = post_script()?;
    let flavour = match o.flavour {
        Flavour::Multi => "multi_thread (2 workers)",
        Flavour::Current => "current_thread",
    };
    println!(
        "api-bench: {flavour}, wrk -t{} -c{} -d{}s, {} runs; load average {}",
        o.load.threads,
        o.load.connections,
        o.load.duration.as_secs(),
        o.runs,
        load_average()
    );
    let script_for = |t: &Target| t.post.then_some(script.as_path());
    if o.load.duration.as_secs() < u64::from(o.slices) {
        return Err("a slice lasts at least a second: --duration must be ≥ --slices".into());
    }
    let warm = Load { duration: Duration::from_secs(1), ..o.load };
    for target in &targets {
        wrk::run(&target.url(), script_for(target), warm)?;
    }
    let mut runs: Vec<[Report; 4]> = Vec::new();
    let slice = Load { duration: o.load.duration / o.slices, ..o.load };
    for run in 1..=o.runs {
        // Each run alternates the targets in slices, so that a change in the machine's load
        // (it is shared) falls on all of them alike.
        let mut slices: [Vec<Report>; 4] = Default::default();
        for _ in 0..o.slices {
            for (target, slices) in targets.iter().zip(&mut slices) {
                slices.push(wrk::run(&target.url(), script_for(target), slice)?);
            }
        }
        let reports = slices.map(|s| Report::combine(&s));
        for (target, report) in targets.iter().zip(&reports) {
            println!("run {run}  {:<24}{report}", target.name);
        }
        let [hello, edri, json, merged] = reports.map(|r| r.rate);
        println!(
            "run {run}  edri/axum-hello {:.2}  edri/axum-json {:.2}  broker-hello/axum-hello {:.2}  (load {})",
            edri / hello,
            edri / json,
            merged / hello,
            load_average()
        );
        runs.push(reports);
    }
    let _ = std::fs::remove_file(&script);
    let ratios = |num: usize, den: usize| -> Vec<f64> {
        runs.iter().map(|r| r[num].rate / r[den].rate).collect()
    };
    for (name, num, den) in [
        ("edri REST / axum hello", 1, 0),
        ("edri REST / axum JSON", 1, 2),
        ("broker hello / axum hello", 3, 0),
    ] {
        let per_run = ratios(num, den);
        let listed: Vec<String> = per_run.iter().map(|r| format!("{r:.2}")).collect();
        let cpu: Vec<f64> = runs
            .iter()
            .map(|r| {
                r[den].cpu_per_request().as_secs_f64() / r[num].cpu_per_request().as_secs_f64()
            })
            .collect();
        let cpu_listed: Vec<String> = cpu.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{name:<26} per run {}; median {:.2}   by CPU/req: {}; median {:.2}",
            listed.join(", "),
            median(per_run),
            cpu_listed.join(", "),
            median(cpu)
        );
    }
    for (i, target) in targets.iter().enumerate() {
        let rate = median(runs.iter().map(|r| r[i].rate).collect());
        let p50 = median(runs.iter().map(|r| r[i].p50.as_secs_f64() * 1e3).collect());
        let p99 = median(runs.iter().map(|r| r[i].p99.as_secs_f64() * 1e3).collect());
        let cpu = median(runs.iter().map(|r| r[i].cpu_per_request().as_secs_f64() * 1e6).collect());
        println!(
            "median {:<24}{rate:>7.0} req/s  {cpu:>5.1} µs CPU/req  p50 {p50:.2} ms  p99 {p99:.2} ms",
            target.name
        );
    }
    println!("load average at the end: {}", load_average());
    let _ = stop.send(());
    let _ = thread.join();
    let clean = runs.iter().flatten().all(|r| r.bad == 0);
    if !clean {
        eprintln!("api-bench: some responses were errors (see `non-2xx` above)");
    }
    Ok(clean)
}
