use edri::prelude::*;

#[event(notification)]
pub struct Ping;

#[derive(Default)]
pub struct Pinger;

#[manager]
impl Pinger {
    #[solve]
    fn ping(&mut self, ev: &Ping, opening: Opening<Ping>, ctx: &Ctx) {
        let _ = (ev, opening.accept(), ctx);
    }
}

fn main() {}
