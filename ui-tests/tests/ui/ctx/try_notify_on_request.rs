use edri::prelude::*;

#[event(request)]
pub struct Ping;

fn send(ctx: &Ctx) {
    let _ = ctx.try_notify(Ping);
}

fn main() {
    let _ = send;
}
