//! What only the switch transport has: the `edri-switch` binary's own log. The behaviours
//! every transport shares are in the conformance suite (`conformance.rs`).

#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};
use support::switch::SwitchTransport;
use support::*;

/// A router with the wrong secret: the switch logs the refusal with the router's id and
/// address, in plain text (no colours into a pipe).
async fn refusal_is_logged(t: &'static dyn Transport) {
    let (hub, log) = SwitchTransport::start_logged("127.0.0.1:0");
    let intruder = Join::new(&hub.addr, "x").secret("not the secret");
    let (mut intruder, line) = router(t, &intruder, "counter");
    assert!(line.starts_with("error: "), "{line}");
    let _ = intruder.child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    let refusal = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains("refused") => break line,
            Ok(line) => lines.push(line),
            Err(_) => panic!("no refusal logged; the switch logged: {lines:#?}"),
        }
    };
    assert!(refusal.contains("WARN"), "{refusal}");
    assert!(refusal.contains("router `x`") && refusal.contains("secret"), "{refusal}");
    assert!(refusal.contains("addr=127.0.0.1:"), "{refusal}");
    assert!(!refusal.contains('\u{1b}'), "ANSI escapes in a piped log: {refusal:?}");
}

fn main() {
    support::run(&[&SwitchTransport], &[("refusal_is_logged", |t| Box::pin(refusal_is_logged(t)))]);
}
