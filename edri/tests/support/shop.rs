//! A small shop for the topology tests: `Charge` (a notification handled by `Billing`, which
//! fails it over 100 and sends a `Receipt` otherwise, and by `Audit`), `Receipt` (handled by
//! `Ledger`) and the `Price` request (`Billing`, a thread handler).

use edri::prelude::*;

#[event(notification)]
pub struct Charge {
    pub amount: u32,
}

/// Sent by `Billing` for every charge it accepts.
#[event(notification)]
pub struct Receipt {
    pub amount: u32,
}

#[event(request)]
pub struct Price {
    pub item: String,
    #[response]
    pub cents: u64,
}

#[derive(Default)]
pub struct Billing;

#[manager]
impl Billing {
    #[solve]
    async fn charge(&mut self, ev: &Charge, ctx: &Ctx) -> Result<(), Failure> {
        if ev.amount > 100 {
            return Err(Failure::failed("over the limit"));
        }
        ctx.notify(Receipt { amount: ev.amount }).await
    }

    #[solve(thread, limit = 3)]
    fn price(_ev: Price) -> PriceResponse {
        PriceResponse { cents: 250 }
    }
}

#[derive(Default)]
pub struct Audit;

#[manager(queue = priority, capacity = 64)]
impl Audit {
    #[solve]
    async fn charge(&mut self, _ev: &Charge) {}
}

#[derive(Default)]
pub struct Ledger;

#[manager]
impl Ledger {
    #[solve]
    fn receipt(&mut self, _ev: &Receipt) {}
}
