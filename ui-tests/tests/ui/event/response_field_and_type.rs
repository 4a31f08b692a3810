use edri::prelude::*;

#[event(request, response = u64)]
pub struct Size {
    pub path: String,
    #[response]
    pub size: u64,
}

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here (the `#[response]` field is not part of the request).
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Size) -> u64 {
        1
    }
}

pub async fn ask(ctx: &Ctx) -> Result<u64, Failure> {
    ctx.request(Size { path: "a".into() }).await
}

fn main() {}
