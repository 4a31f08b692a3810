use edri::prelude::*;

#[event(request, response = u64)]
pub struct Size {
    pub path: String,
    #[response]
    pub size: u64,
}

fn main() {}
