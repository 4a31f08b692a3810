use edri::prelude::*;

#[event(notification)]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Uploaded {
    pub path: String,
}

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Uploaded) {}
}

pub async fn tell(ctx: &Ctx) -> Result<(), Failure> {
    ctx.notify(Uploaded { path: "a".into() }).await
}

fn main() {}
