#[edri::main]
async fn main(args: Vec<String>) -> edri::Result<()> {
    let _ = args;
    Ok(())
}
