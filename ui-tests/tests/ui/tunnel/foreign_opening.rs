// An acceptor must take edri's `Opening<E>`: a type of the user's own that happens to be called
// `Opening` (here shadowing the prelude's) is not the one the manager hands over.
use edri::prelude::*;

#[event(tunnel, send = Vec<u8>, receive = Vec<u8>)]
pub struct Convert {
    pub to: String,
}

pub struct Opening<E>(E);

#[derive(Default)]
pub struct Converter;

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, opening: Opening<Convert>, ctx: &Ctx) {
        let _ = (ev, opening.0, ctx);
    }
}

fn main() {}
