#![allow(missing_docs)]
//! Connections the API broker closes are logged with their counts, a line per period, not a
//! line per socket. (Its own test binary: it installs a global log subscriber.)

use edri::api::Api;
use edri::prelude::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

#[event(request, http = "GET /logs/ping")]
#[derive(Debug, Clone)]
pub struct LogsPing;

#[derive(Default)]
pub struct LogsSvc;

#[manager]
impl LogsSvc {
    #[solve]
    fn ping(&self, _: &LogsPing) -> LogsPingResponse {
        LogsPingResponse
    }
}

/// Every log line written, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn matching(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_timeouts_make_one_log_line_with_the_count() {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter("warn")
        .with_writer(move || writer.clone())
        .init();

    let api = Api::new("127.0.0.1:0").header_timeout(Duration::from_millis(200));
    let running = Edri::builder().api(api).start().await.expect("starts");
    let addr = running.api_addr().expect("the API");
    let mut sockets = Vec::new();
    for _ in 0..50 {
        sockets.push(TcpStream::connect(addr).await.expect("connects"));
    }
    for tcp in &mut sockets {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest));
        assert!(closed.await.is_ok(), "every stalled socket is closed");
    }
    // The report comes within its period (5 s), once.
    let started = Instant::now();
    while lines.matching("API connections").is_empty()
        && started.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reports = lines.matching("API connections");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(reports[0].contains("50 closed by the header timeout (total 50)"), "{}", reports[0]);
    running.shutdown().await.expect("stops");
    // Nothing new to report at shutdown.
    assert_eq!(lines.matching("API connections").len(), 1);
}
