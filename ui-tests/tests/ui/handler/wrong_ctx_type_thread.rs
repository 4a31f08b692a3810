use edri::prelude::*;

#[event(request)]
pub struct Checksum {
    pub data: Vec<u8>,
    #[response]
    pub sum: u64,
}

#[event(notification)]
pub struct Uploaded {
    pub path: String,
}

#[derive(Default)]
pub struct Files;

#[manager]
impl Files {
    #[solve(thread)]
    fn checksum(ev: Checksum, ctx: String) -> ChecksumResponse {
        let _ = ctx;
        ChecksumResponse { sum: ev.data.len() as u64 }
    }
}

fn main() {}
