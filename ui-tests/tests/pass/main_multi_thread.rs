// `#[edri::main(flavor = "multi_thread", worker_threads = 2)]` builds a multi-thread runtime.

use edri::prelude::*;

#[event(request)]
pub struct Ping {
    pub n: u32,
    #[response]
    pub pong: u32,
}

#[derive(Default)]
pub struct Pinger;

#[manager]
impl Pinger {
    #[solve(thread, limit = 2)]
    fn ping(ev: Ping) -> PingResponse {
        PingResponse { pong: ev.n + 1 }
    }
}

#[edri::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> edri::Result<()> {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
    let running = Edri::builder().only_explicit().manager(Pinger).start().await?;
    assert_eq!(running.ctx().request(Ping { n: 1 }).await.unwrap().pong, 2);
    running.shutdown().await
}
