use edri::prelude::*;

#[event(request, name = "ping", name = "pong")]
pub struct Ping;

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }
}

pub async fn ask(ctx: &Ctx) -> Result<PingResponse, Failure> {
    ctx.request(Ping).await
}

fn main() {}
