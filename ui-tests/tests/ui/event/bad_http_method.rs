use edri::prelude::*;

#[event(request, http = "FETCH /files")]
pub struct ListFiles;

fn main() {}
