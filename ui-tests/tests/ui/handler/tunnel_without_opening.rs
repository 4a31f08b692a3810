// A handler of a tunnel event is its acceptor: it takes the `Opening<E>` after the event.
use edri::prelude::*;

#[event(tunnel, send = Vec<u8>, receive = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert) {
        let _ = ev;
    }
}

fn main() {}
