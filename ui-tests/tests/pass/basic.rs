use edri::prelude::*;

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Tick(pub u64);

#[event(request)]
pub struct Ping;

#[derive(Default)]
pub struct M;

#[manager]
impl M {
    #[solve]
    async fn tick(&self, ev: Tick, ctx: &Ctx) {
        let _ = (ev.0, ctx);
    }

    #[solve]
    fn ping(&mut self, _: &Ping) -> PingResponse {
        PingResponse
    }
}

fn main() {}
