// `Serialize` derived by hand on a request that the program goes on to use: one error per
// derive, and none where the request is handled or sent.
use edri::prelude::*;

#[event(request)]
#[derive(Debug, serde::Serialize)]
pub struct Divide {
    pub a: f64,
    pub b: f64,
    #[response]
    pub quotient: f64,
}

#[derive(Default)]
pub struct Calc;

#[manager]
impl Calc {
    #[solve]
    fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, Failure> {
        Ok(DivideResponse { quotient: ev.a / ev.b })
    }
}

pub async fn divide(ctx: &Ctx) -> Result<f64, Failure> {
    Ok(ctx.request(Divide { a: 1.0, b: 2.0 }).await?.quotient)
}

fn main() {}
