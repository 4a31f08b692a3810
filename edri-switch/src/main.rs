//! `edri-switch`: the hub that joins EDRI routers on several processes or machines.
//!
//! ```text
//! edri-switch --listen 127.0.0.1:7800 --secret s3cret
//! EDRI_SWITCH_SECRET=s3cret edri-switch --listen 0.0.0.0:7800
//! ```
//!
//! The first line on standard output is `edri-switch listening on <addr>` (useful with port
//! 0); logs go to standard error (`RUST_LOG` sets the level, default `info`).

use edri_runtime::switch::{SECRET_ENV, Server};
use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "\
usage: edri-switch [--listen ADDR] [--secret SECRET | --secret-file PATH]

  --listen ADDR        where routers connect (default 127.0.0.1:7800)
  --secret SECRET      the secret routers must know (default: $EDRI_SWITCH_SECRET)
  --secret-file PATH   read the secret from a file (trailing newline removed)
  --help               this text";

/// The command line, parsed.
struct Options {
    listen: String,
    secret: Vec<u8>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut listen = "127.0.0.1:7800".to_owned();
    let mut secret = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--secret" => secret = Some(value()?.into_bytes()),
            "--secret-file" => {
                let path = value()?;
                let text = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
                let end = text.iter().rposition(|b| !b"\r\n".contains(b)).map_or(0, |i| i + 1);
                secret = Some(text[..end].to_vec());
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let secret = match secret {
        Some(s) => s,
        None => std::env::var(SECRET_ENV).map(String::into_bytes).map_err(|_| {
            format!(
                "no secret: give --secret, --secret-file or the {SECRET_ENV} environment variable"
            )
        })?,
    };
    if secret.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    Ok(Some(Options { listen, secret }))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("edri-switch: {e}\n{USAGE}");
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
    runtime.block_on(async {
        let server = match Server::bind(&options.listen, &options.secret).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("edri-switch: cannot listen on {}: {e}", options.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = server.local_addr().map_or_else(|_| options.listen.clone(), |a| a.to_string());
        println!("edri-switch listening on {addr}");
        let _ = std::io::stdout().flush();
        tokio::select! {
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
        }
    })
}
