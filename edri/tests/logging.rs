#![allow(missing_docs)]
//! Logs out of the box: a program with `#[edri::main]` and no subscriber of its own logs a
//! failing notification handler at warn (manager, event, message) and a process worker's
//! output at info with its pid, with `RUST_LOG` unset; a program that sets its own subscriber
//! keeps it; a start error prints with its `Display` text. Each case runs this test binary
//! again as the program (`harness = false`).

use edri::prelude::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "EDRI_LOGGING_TEST_ROLE";

#[event(notification)]
pub struct Charge {
    pub amount: u32,
}

#[event(request)]
pub struct Shout {
    pub text: String,
}

#[derive(Default)]
pub struct Billing;

#[manager]
impl Billing {
    #[solve]
    fn charge(&mut self, _ev: &Charge) -> Result<(), Failure> {
        Err(Failure::failed("card declined"))
    }

    #[solve(process)]
    fn shout(ev: Shout) -> ShoutResponse {
        println!("worker says {}", ev.text);
        ShoutResponse
    }
}

/// The program under test: charges once (the handler fails), asks a worker to print, stops.
async fn app() -> edri::Result<()> {
    let running = Edri::builder().only_explicit().manager(Billing).start().await?;
    running.ctx().notify(Charge { amount: 5 }).await?;
    running.ctx().request(Shout { text: "hello-from-the-worker".into() }).await?;
    // The worker's line travels through its stderr pipe to the parent's log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.shutdown().await
}

/// Runs this binary as `role` with `RUST_LOG` unset; its exit code and stderr.
fn run(role: &str) -> (i32, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("`{role}` did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code().unwrap_or(-1), err)
}

fn logs_out_of_the_box() {
    let (code, err) = run("app");
    assert_eq!(code, 0, "{err}");
    let failed = err
        .lines()
        .find(|l| l.contains("notification handler failed"))
        .unwrap_or_else(|| panic!("no warning for the failing handler:\n{err}"));
    assert!(failed.contains("WARN"), "{failed}");
    for part in ["manager=", "Billing", "event=", "Charge", "card declined"] {
        assert!(failed.contains(part), "`{part}` missing in: {failed}");
    }
    let worker = err
        .lines()
        .find(|l| l.contains("worker says hello-from-the-worker"))
        .unwrap_or_else(|| panic!("the worker's output is not in the log:\n{err}"));
    assert!(worker.contains("INFO") && worker.contains("pid="), "{worker}");
    assert!(err.contains("edri router started"), "{err}");
}

fn own_subscriber_is_kept() {
    let (code, err) = run("custom");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("custom subscriber"), "{err}");
    // Its own filter (errors only) holds: EDRI's default `info` subscriber was not installed.
    assert!(!err.contains("notification handler failed"), "{err}");
    assert!(!err.contains("edri router started"), "{err}");
}

fn start_error_prints_its_display_text() {
    let (code, err) = run("broken");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Error: no managers to start"), "{err}");
    assert!(!err.contains("NoManagers"), "Debug form printed: {err}");
}

#[edri::main]
async fn main() -> edri::Result<()> {
    match std::env::var(ROLE).as_deref() {
        Ok("app") => return app().await,
        Ok("custom") => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_max_level(tracing_subscriber::filter::LevelFilter::ERROR)
                .init();
            eprintln!("custom subscriber");
            return app().await;
        }
        Ok("broken") => {
            let running = Edri::builder().only_explicit().start().await?;
            return running.shutdown().await;
        }
        _ => {}
    }
    let cases: [(&str, fn()); 3] = [
        ("logs_out_of_the_box", logs_out_of_the_box),
        ("own_subscriber_is_kept", own_subscriber_is_kept),
        ("start_error_prints_its_display_text", start_error_prints_its_display_text),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        match std::panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("logging: {} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
