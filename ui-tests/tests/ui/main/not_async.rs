#[edri::main]
fn main() -> edri::Result<()> {
    Ok(())
}
