// The opener's end sends the event's `send` type; the acceptor's end sends its `receive` type.
use edri::prelude::*;
use edri::{Acceptor, Chunk};

#[event(tunnel, send = Chunk, receive = u32)]
pub struct Convert;

async fn serve(mut end: Tunnel<Convert, Acceptor>) -> Result<(), Failure> {
    end.send(Chunk(vec![1])).await
}

fn main() {
    let _ = serve;
}
