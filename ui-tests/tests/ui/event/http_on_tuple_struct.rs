use edri::prelude::*;

#[event(request, http = "GET /users")]
pub struct GetUser(pub u64);

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &GetUser) -> GetUserResponse {
        GetUserResponse
    }
}

pub async fn ask(ctx: &Ctx) -> Result<GetUserResponse, Failure> {
    ctx.request(GetUser(7)).await
}

fn main() {}
