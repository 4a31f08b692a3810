use edri::prelude::*;
use edri::Acceptor;

#[event(tunnel, send = Vec<u8>)]
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
    fn accept(&mut self, _: &Convert, opening: Opening<Convert>) -> Result<(), Failure> {
        let _: Tunnel<Convert, Acceptor> = opening.accept()?;
        Ok(())
    }
}

pub async fn open(ctx: &Ctx, item: Vec<u8>) -> Result<Option<()>, Failure> {
    let mut tunnel: Tunnel<Convert> = ctx.open(Convert { to: "png".into() }).await?;
    tunnel.send(item).await?;
    tunnel.recv().await
}

fn main() {}
