use edri::prelude::*;

#[event(notification)]
pub struct Uploaded {
    pub path: String,
}

async fn send(ctx: &Ctx) {
    let _ = ctx.request(Uploaded { path: "a".into() }).await;
}

fn main() {
    let _ = send;
}
