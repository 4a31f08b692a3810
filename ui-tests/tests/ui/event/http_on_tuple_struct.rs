use edri::prelude::*;

#[event(request, http = "GET /users")]
pub struct GetUser(pub u64);

fn main() {}
