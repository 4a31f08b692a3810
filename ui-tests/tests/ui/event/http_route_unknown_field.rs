use edri::prelude::*;

#[event(request, http = "GET /files/{folder}")]
pub struct ListFiles {
    pub dir: String,
}

fn main() {}
