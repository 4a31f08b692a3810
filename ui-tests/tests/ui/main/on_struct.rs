#[edri::main]
struct Main;

fn main() {}
