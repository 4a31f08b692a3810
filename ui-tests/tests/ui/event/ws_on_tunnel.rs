use edri::prelude::*;
use edri::Acceptor;

#[event(notification)]
pub struct Chunk {
    pub bytes: Vec<u8>,
}

#[event(tunnel, send = Chunk, receive = Chunk, ws)]
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

pub async fn open(ctx: &Ctx, item: Chunk) -> Result<Option<Chunk>, Failure> {
    let mut tunnel: Tunnel<Convert> = ctx.open(Convert { to: "png".into() }).await?;
    tunnel.send(item).await?;
    tunnel.recv().await
}

fn main() {}
