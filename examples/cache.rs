//! The scheduler and the store together: a `Downloader` refreshes prices into the store on a
//! schedule, a `Reader` watches them and reads them back. Exits by itself after a few refreshes.
//!
//! `cargo run --release --example cache`

use edri::Job;
use edri::prelude::*;
use edri::store::Changed;
use std::time::Duration;

/// Time to refresh the prices (sent by the scheduler).
#[event(notification)]
#[derive(Debug, Clone)]
pub struct Refresh;

/// "Downloads" prices and caches them in the store.
#[derive(Default)]
pub struct Downloader {
    round: u64,
}

#[manager]
impl Downloader {
    #[solve]
    async fn refresh(&mut self, _: &Refresh, ctx: &Ctx) -> Result<(), Failure> {
        self.round += 1;
        // A stand-in for a download: prices that move a little each round.
        let eur_cents = 108 + self.round;
        ctx.store().set("prices/eur", &eur_cents).await?;
        ctx.store().set_with_ttl("prices/fresh", &true, Duration::from_millis(300)).await?;
        println!("downloader: round {} cached EUR at {eur_cents} cents", self.round);
        Ok(())
    }
}

/// Watches the cached prices and reads them.
#[derive(Default)]
pub struct Reader {
    seen: u64,
}

#[manager]
impl Reader {
    #[solve]
    async fn started(&mut self, _: &Started, ctx: &Ctx) {
        ctx.store().watch("prices/eur").await.ok();
    }

    #[solve]
    async fn changed(&mut self, ev: &Changed, ctx: &Ctx) -> Result<(), Failure> {
        self.seen += 1;
        let cents: Option<u64> = ev.value()?;
        let fresh: Option<bool> = ctx.store().get("prices/fresh").await?;
        println!("reader: {} is now {cents:?} (fresh: {})", ev.key, fresh.unwrap_or(false));
        if self.seen == 3 {
            let visits = ctx.store().increment("reader/visits", 3).await?;
            println!("reader: three updates seen ({visits} counted), stopping");
            ctx.shutdown();
        }
        Ok(())
    }
}

#[edri::main]
async fn main() -> edri::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    Edri::builder()
        .job(Job::every(Duration::from_millis(200), Refresh).named("refresh-prices"))
        .run()
        .await
}
