use edri::prelude::*;

#[event(request)]
pub struct Size(pub String, #[response] pub u64);

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Size) -> SizeResponse {
        SizeResponse
    }
}

pub async fn ask(ctx: &Ctx) -> Result<SizeResponse, Failure> {
    ctx.request(Size("a".into(), 1)).await
}

fn main() {}
