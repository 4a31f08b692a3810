use edri::prelude::*;

#[event(notification, ws)]
pub struct Temperature(pub f64);

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Temperature) {}
}

pub async fn tell(ctx: &Ctx) -> Result<(), Failure> {
    ctx.notify(Temperature(21.5)).await
}

fn main() {}
