use edri::prelude::*;

#[event(request)]
pub struct Size(pub String, #[response] pub u64);

fn main() {}
