//! Two routers in two processes joined through NATS (JetStream).
//!
//! ```sh
//! nats-server -js -sd /tmp/edri-nats &                 # NATS 2.10+ with JetStream
//! cargo run --release --example nats                   # or NATS_URL=nats://host:4222
//! ```
//!
//! The program starts a copy of itself as the warehouse router, then its own router (the
//! shop) asks the warehouse for stock (a core NATS request, answered by the warehouse's
//! queue group), asks every router with `request_all`, announces a price change (a JetStream
//! message, acknowledged by the warehouse once handled) and tells the warehouse to stop.

use edri::nats::Nats;
use edri::prelude::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How many of `item` the warehouse holds.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Stock {
    /// What to look up.
    pub item: String,
    /// How many there are.
    #[response]
    pub count: u32,
}

/// A new price, for every router.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct PriceChanged {
    /// The item.
    pub item: String,
    /// Its new price, in cents.
    pub cents: u64,
}

/// Asks the warehouse to stop.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct CloseUp;

/// The warehouse (runs in the child process).
#[derive(Default)]
pub struct Warehouse;

#[manager(manual)]
impl Warehouse {
    #[solve]
    fn stock(&mut self, ev: &Stock) -> StockResponse {
        StockResponse { count: ev.item.len() as u32 * 3 }
    }

    #[solve]
    fn price(&mut self, ev: &PriceChanged) {
        println!("  [warehouse] {} now costs {} cents", ev.item, ev.cents);
    }

    #[solve]
    fn close_up(&mut self, _: &CloseUp, ctx: &Ctx) {
        println!("  [warehouse] closing");
        ctx.shutdown();
    }
}

/// The shop's router needs a manager of its own.
#[derive(Default)]
pub struct Shop;

#[manager(manual)]
impl Shop {
    #[solve]
    fn price(&mut self, ev: &PriceChanged) {
        println!("  [shop] {} now costs {} cents", ev.item, ev.cents);
    }
}

fn nats(id: &str) -> Nats {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    Nats::new(url).namespace("example").id(id)
}

#[edri::main]
async fn main() -> edri::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("warehouse") {
        let running =
            Edri::builder().only_explicit().manager(Warehouse).nats(nats("warehouse")).start();
        let running = running.await?;
        println!("ready");
        running.wait_for_stop_signal().await;
        return running.shutdown().await;
    }

    let mut child =
        Command::new(std::env::current_exe()?).arg("warehouse").stdout(Stdio::piped()).spawn()?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line)?;
    println!("warehouse: {}", line.trim());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            println!("{line}");
        }
    });
    if line.trim() != "ready" {
        child.wait()?;
        return Ok(());
    }

    let running = Edri::builder().only_explicit().manager(Shop).nats(nats("shop")).start().await?;
    // Wait (bounded) until the warehouse is seen.
    for _ in 0..200 {
        if running.nats().expect("joined").peers.iter().any(|p| p.connected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ctx = running.ctx();
    for item in ["apples", "pears"] {
        match ctx.request(Stock { item: item.into() }).await {
            Ok(r) => println!("{item}: {}", r.count),
            Err(failure) => println!("{item}: {failure}"),
        }
    }
    let all = ctx.request_all(Stock { item: "kiwis".into() }).await;
    println!("kiwis: {} answers (request_all)", all.len());
    ctx.notify(PriceChanged { item: "apples".into(), cents: 120 }).await.ok();
    ctx.notify(CloseUp).await.ok();
    // Bounded: a warehouse that does not stop within 10 s is killed.
    for _ in 0..100 {
        if child.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if child.try_wait()?.is_none() {
        child.kill()?;
        child.wait()?;
    }
    let status = running.nats().expect("joined");
    println!("published {} notifications, {} lost", status.published, status.lost);
    running.shutdown().await
}
