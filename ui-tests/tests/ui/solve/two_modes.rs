use edri::prelude::*;

#[event(request)]
pub struct Checksum {
    pub data: Vec<u8>,
    #[response]
    pub sum: u64,
}

#[derive(Default)]
pub struct Hasher;

#[manager]
impl Hasher {
    #[solve(thread, process)]
    fn checksum(ev: Checksum) -> ChecksumResponse {
        ChecksumResponse { sum: ev.data.len() as u64 }
    }
}

fn main() {}
