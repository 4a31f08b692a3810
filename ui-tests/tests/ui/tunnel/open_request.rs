use edri::prelude::*;

#[event(request)]
pub struct Lookup {
    pub key: String,
    #[response]
    pub value: String,
}

async fn open(ctx: &Ctx) {
    let _ = ctx.open(Lookup { key: "a".into() }).await;
}

fn main() {
    let _ = open;
}
