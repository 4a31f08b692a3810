#[edri::main(flavour = "current_thread")]
async fn main() -> edri::Result<()> {
    Ok(())
}
