use edri::prelude::*;

#[event(name = "ping")]
pub struct Ping;

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Ping) {}
}

pub async fn tell(ctx: &Ctx) -> Result<(), Failure> {
    ctx.notify(Ping).await
}

fn main() {}
