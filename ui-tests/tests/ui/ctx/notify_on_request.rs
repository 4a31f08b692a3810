use edri::prelude::*;

#[event(request)]
pub struct Ping;

async fn send(ctx: &Ctx) {
    let _ = ctx.notify(Ping).await;
}

fn main() {
    let _ = send;
}
