// A misspelled argument of a request that the program goes on to use: one error, on the typo.
// The request struct still loses its `#[response]` field to `PlaceOrderResponse`, the handler
// still type-checks against it, and `ctx.request(..)` still returns a future.
use edri::prelude::*;

#[event(request, htp = "POST /orders")]
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub order_id: u64,
    #[response]
    pub accepted: bool,
}

#[derive(Default)]
pub struct Orders;

#[manager]
impl Orders {
    #[solve]
    fn place(&mut self, ev: &PlaceOrder) -> PlaceOrderResponse {
        PlaceOrderResponse { accepted: ev.order_id > 0 }
    }
}

pub async fn place(ctx: &Ctx) -> Result<bool, Failure> {
    Ok(ctx.request(PlaceOrder { order_id: 7 }).await?.accepted)
}

fn main() {}
