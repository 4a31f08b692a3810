use edri::prelude::*;

#[event(request, http = "GET files/{dir}")]
pub struct ListFiles {
    pub dir: String,
}

fn main() {}
