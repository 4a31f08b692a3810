//! `edri`: watch and talk to EDRI routers through their API broker.
//!
//! ```text
//! edri top 127.0.0.1:8080                          # live: managers, depths, rates (q quits)
//! edri events 127.0.0.1:8080                       # the catalog
//! edri call 127.0.0.1:8080 CreateNote '{"title": "milk", "body": ""}'
//! edri tail 127.0.0.1:8080 NoteCreated --filter title=milk
//! EDRI_TOKEN=s3cret edri top 10.0.0.5:8080          # a router with `Api::token(..)`
//! ```
//!
//! It speaks only the broker's public HTTP and WebSocket API (`/edri/topology`,
//! `/edri/events`, the events' REST routes, `/edri/ws`). Errors are one line on standard
//! error; the exit code is 0 on success, 1 when the router could not be reached or answered
//! with an error, 2 for a wrong command line.

mod call;
mod catalog;
mod error;
mod table;
mod tail;
mod target;
mod top;
mod ws;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;
use std::time::Duration;
use target::Target;

/// Watch and talk to EDRI routers through their API broker.
#[derive(Debug, Parser)]
#[command(name = "edri", version, about, propagate_version = true)]
struct Cli {
    /// The bearer token of a router whose API has one.
    #[arg(long, global = true, env = "EDRI_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// How long to wait for the router, in seconds, per exchange.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = seconds)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A live view of the router: managers with mailbox depth, processed and rates; events
    /// with rates and senders; joined routers. Refreshes every second; q or Ctrl-C quits.
    Top {
        /// The router's API address: HOST:PORT or http://HOST:PORT[/PREFIX].
        addr: String,
        /// Print one frame and exit (for scripts and tests).
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds)]
        interval: Duration,
    },
    /// The events the router's API exposes: kind, REST route, WebSocket, fields, response.
    Events {
        /// The router's API address: HOST:PORT or http://HOST:PORT[/PREFIX].
        addr: String,
        /// Print the catalog as the router gives it (JSON, with the JSON schemas).
        #[arg(long)]
        json: bool,
    },
    /// Send one event and print the answer as JSON (over the WebSocket when the event is
    /// `ws`, else over its REST route).
    Call {
        /// The router's API address: HOST:PORT or http://HOST:PORT[/PREFIX].
        addr: String,
        /// The event's name, as `edri events` lists it.
        event: String,
        /// The event's fields, a JSON object.
        #[arg(default_value = "{}")]
        data: String,
        /// Force the way the event is sent.
        #[arg(long, value_enum)]
        via: Option<call::Via>,
    },
    /// Print the notifications pushed on the WebSocket, one JSON line each, until Ctrl-C.
    Tail {
        /// The router's API address: HOST:PORT or http://HOST:PORT[/PREFIX].
        addr: String,
        /// The notifications (declared with `ws`) to follow.
        #[arg(required = true)]
        events: Vec<String>,
        /// Only those whose field FIELD equals VALUE (JSON, or else text); repeatable.
        #[arg(long, short, value_name = "FIELD=VALUE")]
        filter: Vec<String>,
        /// Exit after this many notifications.
        #[arg(long, short = 'n', value_name = "N")]
        count: Option<u64>,
    },
}

/// A positive number of seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: expected a positive number of seconds"))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let target = |addr: &str| Target::parse(addr, cli.token.clone(), cli.timeout);
    match &cli.command {
        Command::Top { addr, once, interval } => top::run(&target(addr)?, *once, *interval).await,
        Command::Events { addr, json } => catalog::run(&target(addr)?, *json).await,
        Command::Call { addr, event, data, via } => {
            // The argument is checked before anything is sent.
            call::fields(data)?;
            call::run(&target(addr)?, event, data, *via).await
        }
        Command::Tail { addr, events, filter, count } => {
            let filter = tail::filter(filter)?;
            tail::run(&target(addr)?, events, filter, *count).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edri: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Tasks still running (a connection's driver) are not waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edri: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
