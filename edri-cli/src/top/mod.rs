//! `edri top ADDR`: a live view of a router's managers (mailbox depth, processed, rates),
//! its events (rates and senders, when the router tracks them) and the routers joined to it,
//! from `GET /edri/topology` every second. `--once` prints one frame and exits.

mod model;
mod render;
mod screen;

use crate::error::CliError;
use crate::target::Target;
use model::{Snapshot, Topology};
use render::View;
use std::time::{Duration, Instant};

/// Reads the topology once.
async fn poll(target: &Target) -> Result<Snapshot, CliError> {
    let value = target.get_json("/edri/topology").await?;
    let topology: Topology = serde_json::from_value(value).map_err(|e| {
        CliError::Router(format!("the router's topology (/edri/topology) is not understood: {e}"))
    })?;
    Ok(Snapshot { topology, at: Instant::now() })
}

/// Runs the view: one frame with `once`, else a frame every `interval` until `q` or Ctrl-C.
pub(crate) async fn run(target: &Target, once: bool, interval: Duration) -> Result<(), CliError> {
    let mut now = poll(target).await?;
    let view = |now: &Snapshot, before: Option<&Snapshot>, error: Option<&str>, live: bool| {
        render::frame(&View { addr: target.given(), now, before, error, live })
    };
    if once {
        print!("{}", view(&now, None, None, false));
        return Ok(());
    }
    let mut keys = screen::keys();
    let screen = screen::Screen::enter();
    let mut before: Option<Snapshot> = None;
    let mut error: Option<String> = None;
    let mut keys_open = true;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        screen.draw(&view(&now, before.as_ref(), error.as_deref(), true));
        tokio::select! {
            _ = ticks.tick() => match poll(target).await {
                Ok(next) => {
                    before = Some(std::mem::replace(&mut now, next));
                    error = None;
                }
                Err(e) => error = Some(e.to_string()),
            },
            key = keys.recv(), if keys_open => match key {
                Some(b'q' | b'Q') => return Ok(()),
                Some(_) => {}
                // Standard input ended: only Ctrl-C quits now.
                None => keys_open = false,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
