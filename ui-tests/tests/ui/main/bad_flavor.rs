#[edri::main(flavor = "single_thread")]
async fn main() -> edri::Result<()> {
    Ok(())
}
