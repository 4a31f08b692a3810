use edri::prelude::*;

#[event(request)]
pub struct Ping;

#[event(notification)]
pub struct Uploaded {
    pub path: String,
}

#[derive(Default)]
pub struct Files;

#[manager]
impl Files {
    #[solve]
    async fn uploaded(&mut self, ev: &Uploaded, ctx: &Ctx) {
        let _ = ev;
        ctx.notify(Ping).await.ok();
    }
}

fn main() {}
