use edri::prelude::*;

#[event(request, send = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &Convert) -> ConvertResponse {
        ConvertResponse
    }
}

pub async fn ask(ctx: &Ctx) -> Result<ConvertResponse, Failure> {
    ctx.request(Convert { to: "png".into() }).await
}

fn main() {}
