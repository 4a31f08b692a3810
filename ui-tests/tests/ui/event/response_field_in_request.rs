// A request built with its `#[response]` field: rustc's own error, which a macro cannot add a
// note to; the request's generated documentation says where the field went (see `edri::event`).
use edri::prelude::*;

#[event(request)]
pub struct Heavy {
    pub n: u64,
    #[response]
    pub out: u64,
}

pub async fn ask(ctx: &Ctx) -> Result<u64, Failure> {
    Ok(ctx.request(Heavy { n: 21, out: 0 }).await?.out)
}

fn main() {}
