use edri::prelude::*;

#[event(request, reponse = String)]
pub struct Ping;

fn main() {}
