// The macros with `crate = renamed_edri`, and no `edri` name anywhere.
//
// Cargo refuses one package depending on `edri` under two names, and the other cases need
// `edri`, so the rename is done the way rustc sees a renamed dependency: the `edri` rlib
// under another name (`extern crate edri as renamed_edri`). Then `extern crate self as edri`
// makes `::edri` name this crate, so any `::edri::..` path left in an expansion fails to
// resolve instead of silently reaching the real facade.

extern crate edri as renamed_edri;
extern crate self as edri;

use renamed_edri::prelude::*;

#[event(notification, crate = renamed_edri)]
#[derive(Debug, Clone)]
pub struct Tick {
    pub n: u64,
}

#[event(request, crate = renamed_edri)]
#[derive(Debug, Clone)]
pub struct Count {
    #[response]
    pub ticks: u64,
}

#[event(request, response = u64, http = "POST /twice", ws, crate = renamed_edri)]
pub struct Twice {
    pub n: u64,
}

#[event(tunnel, send = Vec<u8>, receive = Vec<u8>, crate = renamed_edri)]
pub struct Pipe;

#[derive(Default)]
pub struct Clock {
    ticks: u64,
}

#[manager(crate = renamed_edri)]
impl Clock {
    #[solve]
    async fn tick(&mut self, ev: &Tick, ctx: &Ctx) {
        let _ = ctx;
        self.ticks += ev.n;
    }

    #[solve]
    fn count(&self, _: Count) -> Result<CountResponse, Failure> {
        Ok(CountResponse { ticks: self.ticks })
    }

    #[solve(thread, limit = 1)]
    fn twice(ev: Twice, ctx: Ctx) -> u64 {
        let _ = ctx;
        ev.n * 2
    }
}

#[renamed_edri::main(crate = renamed_edri, flavor = "current_thread")]
async fn main() -> renamed_edri::Result<()> {
    let running = Edri::builder().only_explicit().manager(Clock::default()).start().await?;
    let ctx = running.ctx();
    ctx.notify(Tick { n: 3 }).await.unwrap();
    assert_eq!(ctx.request(Count {}).await.unwrap().ticks, 3);
    assert_eq!(ctx.request(Twice { n: 4 }).await.unwrap(), 8);
    let _ = <Pipe as Event>::META;
    running.shutdown().await
}
