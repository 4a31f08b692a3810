use edri::prelude::*;

#[event(notification)]
pub struct Ping;

fn open(ctx: &Ctx) {
    let _ = ctx.blocking_open(Ping);
}

fn main() {
    let _ = open;
}
