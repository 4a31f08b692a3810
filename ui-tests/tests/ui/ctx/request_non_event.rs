use edri::prelude::*;

async fn send(ctx: &Ctx) {
    let _ = ctx.request(String::from("ping")).await;
}

fn main() {
    let _ = send;
}
