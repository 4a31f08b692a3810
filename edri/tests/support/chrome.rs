//! A headless Chromium driven over the Chrome DevTools Protocol, for tests that load a page
//! in a real browser. Started as a child process in its own process group, killed (with its
//! helpers) by that id when dropped, panic or not. Every wait is bounded.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a single DevTools call may take.
const CALL_BOUND: Duration = Duration::from_secs(20);

/// A running browser with one page to drive.
pub struct Chrome {
    child: Child,
    dir: PathBuf,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // The browser's renderer and GPU helpers are in its process group: end them all by
        // the group's id (the browser's pid), then reap the browser.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `what`, or a panic naming it after `bound`.
pub async fn within<T>(what: &str, bound: Duration, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(bound, f).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no result within {bound:?}"),
    }
}

/// The browser to start: `EDRI_CHROMIUM`, or `chromium` on the `PATH`.
fn program() -> String {
    std::env::var("EDRI_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

fn missing(program: &str, error: &std::io::Error) -> ! {
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI: cannot start `{program}` ({error}); `.ci/run` installs it with \
             `apt-get install -y chromium` — this test needs a real browser"
        )
    }
    panic!(
        "cannot start `{program}` ({error}): this test loads the page in a real browser; \
         install it with `apt-get install chromium` (or point EDRI_CHROMIUM at a Chrome binary)"
    )
}

impl Chrome {
    /// Starts a headless browser on `about:blank` and connects to its page.
    pub async fn launch() -> Self {
        use std::os::unix::process::CommandExt as _;
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("edri-chrome-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("chrome.log")).unwrap();
        let program = program();
        let child = Command::new(&program)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,1000",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| missing(&program, &e));
        let mut chrome = Self::attach(child, dir).await;
        chrome.call("Page.enable", json!({})).await;
        chrome
    }

    async fn attach(mut child: Child, dir: PathBuf) -> Self {
        // `DevToolsActivePort`: the port, then the browser's own endpoint.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let text = std::fs::read_to_string(dir.join("DevToolsActivePort")).unwrap_or_default();
            if let Some(port) = text.lines().next().and_then(|l| l.trim().parse::<u16>().ok()) {
                break port;
            }
            let log = || std::fs::read_to_string(dir.join("chrome.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the browser ended ({status}) before it listened:\n{}", log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the browser did not write DevToolsActivePort within 30 s:\n{}", log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let list = format!("http://127.0.0.1:{port}/json/list");
        let targets: Value = within("the DevTools target list", CALL_BOUND, async {
            reqwest::get(&list).await.unwrap().json().await.unwrap()
        })
        .await;
        let url = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page among the browser's targets: {targets}"))
            .to_owned();
        let (page, _) = within("the DevTools connection", CALL_BOUND, async {
            tokio_tungstenite::connect_async(url.as_str()).await.unwrap()
        })
        .await;
        Self { child, dir, page, next_id: 0 }
    }

    /// Calls a DevTools method on the page and returns its result (events in between are
    /// skipped); panics on an error answer.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        let page = &mut self.page;
        within(method, CALL_BOUND, async {
            page.send(Message::text(message)).await.unwrap();
            loop {
                let frame = page.next().await.expect("the DevTools socket closed").unwrap();
                let Message::Text(text) = frame else { continue };
                let reply: Value = serde_json::from_str(&text).unwrap();
                if reply["id"] != id {
                    continue;
                }
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        })
        .await
    }

    /// Loads `url` in the page.
    pub async fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(result.get("errorText").is_none(), "navigating to {url}: {result}");
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true });
        let result = self.call("Runtime.evaluate", params).await;
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` every 25 ms until it is `true`; how long that took. Panics with
    /// `what` and the page's text after `bound`.
    pub async fn wait_for(&mut self, what: &str, expression: &str, bound: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.eval(expression).await == Value::Bool(true) {
                return start.elapsed();
            }
            if start.elapsed() > bound {
                let text = self.eval("document.body ? document.body.innerText : ''").await;
                panic!(
                    "{what}: not within {bound:?}; the page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A PNG of the page as it is drawn now.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let params = json!({ "format": "png", "captureBeyondViewport": true });
        let shot = self.call("Page.captureScreenshot", params).await;
        decode_base64(shot["data"].as_str().expect("screenshot data"))
    }
}

/// Standard base64 (what DevTools sends binary data as).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {:?}", char::from(c)),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
