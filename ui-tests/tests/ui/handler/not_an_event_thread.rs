use edri::prelude::*;

#[derive(Default)]
pub struct Hasher;

#[manager]
impl Hasher {
    #[solve(thread, limit = 2)]
    fn checksum(ev: Vec<u8>, _ctx: Ctx) -> u64 {
        ev.len() as u64
    }
}

fn main() {}
