use edri::prelude::*;

#[event(notification, name = "")]
pub struct Tick;

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Tick) {}
}

pub async fn tell(ctx: &Ctx) -> Result<(), Failure> {
    ctx.notify(Tick).await
}

fn main() {}
