use edri::prelude::*;

#[event(request, http = "GET /files/{folder}")]
pub struct ListFiles {
    pub dir: String,
}

// The event is used as the rest of a program would use it: only the argument error above is
// reported, not its consequences here.
#[derive(Default)]
pub struct Server;

#[manager]
impl Server {
    #[solve]
    fn handle(&mut self, _: &ListFiles) -> ListFilesResponse {
        ListFilesResponse
    }
}

pub async fn ask(ctx: &Ctx) -> Result<ListFilesResponse, Failure> {
    ctx.request(ListFiles { dir: "/".into() }).await
}

fn main() {}
