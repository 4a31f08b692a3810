//! Logs out of the box: a `tracing` subscriber that prints to stderr, filtered by `RUST_LOG`
//! (default `info`). `#[edri::main]` installs it when the router starts, unless the program
//! installed its own subscriber first or opted out with `#[edri::main(tracing = false)]`; a
//! plain `main` calls [`init`]. Worker processes install it too: their lines reach the parent's
//! log with the worker's pid.

use std::sync::atomic::{AtomicBool, Ordering};

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// Set by `#[edri::main]`: install the default subscriber when a router starts.
static AT_START: AtomicBool = AtomicBool::new(false);

/// Installs a `tracing` subscriber printing to stderr, filtered by `RUST_LOG` (default
/// `info`; an unparsable `RUST_LOG` falls back to it and says so), with colours on a terminal
/// unless `NO_COLOR` is set. Does nothing when the program already has a global subscriber.
///
/// Returns whether it installed one.
///
/// ```no_run
/// // First thing in a plain `main`:
/// edri::tracing::init();
/// ```
pub fn init() -> bool {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    if tracing::dispatcher::has_been_set() {
        return false;
    }
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((text, e))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init()
        .is_ok();
    if let (true, Some((text, error))) = (installed, bad) {
        tracing::warn!(rust_log = %text, %error, "RUST_LOG does not parse; logging at `{DEFAULT_FILTER}`");
    }
    installed
}

/// What `#[edri::main]` asks for: the default subscriber at the router's start (`true`), or
/// none (`tracing = false`).
pub(crate) fn set_at_start(on: bool) {
    AT_START.store(on, Ordering::Release);
}

/// Called when a router starts (and when a worker process starts): installs the default
/// subscriber if `#[edri::main]` asked for it and none is set yet.
pub(crate) fn at_start() {
    if AT_START.load(Ordering::Acquire) {
        init();
    }
}
