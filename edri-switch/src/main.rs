//! `edri-switch`: the hub that joins EDRI routers on several processes or machines.
//!
//! ```text
//! edri-switch --listen 127.0.0.1:7800 --secret s3cret
//! EDRI_SWITCH_SECRET=s3cret edri-switch --listen 0.0.0.0:7800 --metrics 127.0.0.1:9780
//! ```
//!
//! The first line on standard output is `edri-switch listening on <addr>` (useful with port
//! 0); with `--metrics`, the second is `edri-switch metrics on <addr>`. Logs go to standard
//! error (`RUST_LOG` sets the level, default `info`).

mod options;
mod status_http;

use clap::Parser as _;
use edri_runtime::switch::Server;
use options::Options;
use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = Options::parse();
    let secret = match options.secret() {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("edri-switch: {e}");
            return ExitCode::from(2);
        }
    };
    // Colours only on a terminal (and not with NO_COLOR): a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // One thread: forwarding is a copy per frame, and keeping every connection's tasks on one
    // thread saves a cross-thread wake-up per hop (tens of µs on small VMs).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edri-switch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(options, secret))
}

/// Binds the switch (and its status endpoint), then serves until Ctrl-C.
async fn serve(options: Options, secret: Vec<u8>) -> ExitCode {
    let server = match Server::bind(&options.listen, &secret).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("edri-switch: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr().map_or_else(|_| options.listen.clone(), |a| a.to_string());
    println!("edri-switch listening on {addr}");
    let status = match &options.metrics {
        Some(metrics) => match status_http::bind(metrics).await {
            Ok(listener) => {
                let at = listener.local_addr().map_or_else(|_| metrics.clone(), |a| a.to_string());
                println!("edri-switch metrics on {at}");
                Some(tokio::spawn(status_http::serve(listener, server.status_handle())))
            }
            Err(e) => {
                eprintln!("edri-switch: cannot serve metrics on {metrics}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let _ = std::io::stdout().flush();
    let code = tokio::select! {
        result = server.run() => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edri-switch: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("Ctrl-C: stopping");
            ExitCode::SUCCESS
        }
    };
    if let Some(status) = status {
        status.abort();
    }
    code
}
