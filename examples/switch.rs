//! Three routers in three processes joined by a switch.
//!
//! ```sh
//! cargo run --release --example switch
//! ```
//!
//! The program runs the switch in-process ([`edri::switch::Server`], what the `edri-switch`
//! binary runs) and starts two more copies of itself as warehouse routers. Its own router then
//! asks for stock (each request answered by one warehouse, round-robin), asks every warehouse
//! at once with `request_all`, announces a price change that reaches both, and finally tells
//! them to stop; each leaves the switch gracefully.
//!
//! On several machines, run `edri-switch --listen 0.0.0.0:7800` somewhere, give every router
//! `.switch("that-host:7800")` and the same `EDRI_SWITCH_SECRET`.

use edri::prelude::*;
use edri::switch::{Server, Switch};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "example-secret";

/// How many of `item` a warehouse holds.
#[event(request)]
#[derive(Debug, Clone)]
pub struct Stock {
    /// What to look up.
    pub item: String,
    /// How many there are.
    #[response]
    pub count: u32,
    /// Which warehouse answered.
    #[response]
    pub warehouse: String,
}

/// A new price, for every warehouse.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct PriceChanged {
    /// The item.
    pub item: String,
    /// Its new price, in cents.
    pub cents: u64,
}

/// Asks the warehouses to stop.
#[event(notification)]
#[derive(Debug, Clone)]
pub struct CloseUp;

/// One warehouse (runs in a child process).
pub struct Warehouse {
    name: String,
}

#[manager(manual)]
impl Warehouse {
    #[solve]
    fn stock(&mut self, ev: &Stock) -> StockResponse {
        let count = ev.item.len() as u32 * if self.name == "north" { 3 } else { 5 };
        StockResponse { count, warehouse: self.name.clone() }
    }

    #[solve]
    fn price(&mut self, ev: &PriceChanged) {
        println!("  [{}] {} now costs {} cents", self.name, ev.item, ev.cents);
    }

    #[solve]
    fn close_up(&mut self, _: &CloseUp, ctx: &Ctx) {
        println!("  [{}] closing", self.name);
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

/// A warehouse router: `cargo run --example switch -- warehouse NAME ADDR`.
async fn warehouse(name: String, addr: String) -> edri::Result<()> {
    let running = Edri::builder()
        .only_explicit()
        .manager(Warehouse { name: name.clone() })
        .switch(Switch::new(addr).secret(SECRET).id(name))
        .start()
        .await?;
    println!("ready");
    running.wait_for_stop_signal().await;
    running.shutdown().await
}

#[edri::main]
async fn main() -> edri::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, name, addr] = args.as_slice()
        && role == "warehouse"
    {
        return warehouse(name.clone(), addr.clone()).await;
    }

    let server = Server::bind("127.0.0.1:0", SECRET).await?;
    let addr = server.local_addr()?.to_string();
    tokio::spawn(server.run());
    println!("switch on {addr}");

    let mut children = Vec::new();
    for name in ["north", "south"] {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["warehouse", name, &addr])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line)?;
        println!("warehouse {name}: {}", line.trim());
        // Relay the child's lines.
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                println!("{line}");
            }
        });
        children.push(child);
    }

    let running = Edri::builder()
        .only_explicit()
        .manager(Shop)
        .switch(Switch::new(addr).secret(SECRET).id("shop"))
        .start()
        .await?;
    // Wait (bounded) until both warehouses are seen.
    for _ in 0..200 {
        let status = running.switch().expect("joined");
        if status.peers.iter().filter(|p| p.connected).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ctx = running.ctx();

    for item in ["apples", "pears", "plums", "figs"] {
        match ctx.request(Stock { item: item.into() }).await {
            Ok(r) => println!("{item}: {} in {}", r.count, r.warehouse),
            Err(failure) => println!("{item}: {failure}"),
        }
    }
    let all = ctx.request_all(Stock { item: "kiwis".into() }).await;
    for answer in all {
        match answer {
            Ok(r) => println!("kiwis: {} in {} (request_all)", r.count, r.warehouse),
            Err(failure) => println!("kiwis: {failure}"),
        }
    }
    ctx.notify(PriceChanged { item: "apples".into(), cents: 120 }).await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctx.notify(CloseUp).await.ok();
    for mut child in children {
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
    }
    let status = running.switch().expect("joined");
    println!("sent {} events to other routers, {} lost", status.sent, status.lost);
    running.shutdown().await
}
