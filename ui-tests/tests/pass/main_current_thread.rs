// `#[edri::main(flavor = "current_thread")]` builds a current-thread runtime.

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
    #[solve]
    fn ping(&mut self, ev: &Ping) -> PingResponse {
        PingResponse { pong: ev.n + 1 }
    }
}

#[edri::main(flavor = "current_thread")]
async fn main() -> edri::Result<()> {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
    let running = Edri::builder().only_explicit().manager(Pinger).start().await?;
    assert_eq!(running.ctx().request(Ping { n: 1 }).await.unwrap().pong, 2);
    running.shutdown().await
}
