//! File conversion through a tunnel: the client streams a file in 64 KiB chunks to a
//! converter, which converts chunk by chunk and streams the result back — once on a thread
//! the acceptor hands its end to, once in a worker process (`#[solve(process)]`).
//!
//! ```sh
//! cargo run --release --example tunnel [-- INPUT [OUTPUT]]
//! ```
//!
//! Without arguments it converts a generated 32 MiB text file in a temporary directory. The
//! conversion (here: ROT13 and upper case) uses the tunnel's blocking methods; sending,
//! converting and writing overlap, and the tunnel's window keeps at most 16 chunks in flight
//! each way however slow the converter is.

use edri::prelude::*;
use edri::{Acceptor, Chunk};
use std::io::{Read, Write};
use std::time::Instant;

/// What the converter does to the text.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub enum Conversion {
    /// Upper case.
    Upper,
    /// ROT13, then upper case.
    Rot13Upper,
}

/// A conversion: the opener sends the file's chunks, the converter sends back the converted
/// chunks, in order.
#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct Convert {
    /// What to do.
    pub conversion: Conversion,
    /// The file's size (refused above 1 GiB).
    pub bytes: u64,
}

/// The same conversion, run in a worker process of this binary.
#[event(tunnel, send = Chunk, receive = Chunk)]
pub struct ConvertInWorker {
    /// What to do.
    pub conversion: Conversion,
}

/// Accepts conversions and runs each on its own thread, or in a worker process.
#[derive(Default)]
pub struct Converter {
    started: u32,
}

#[manager]
impl Converter {
    #[solve]
    fn convert(&mut self, ev: &Convert, opening: Opening<Convert>) {
        if ev.bytes > 1 << 30 {
            opening.reject(Failure::invalid("files above 1 GiB are not converted here"));
            return;
        }
        let Ok(end) = opening.accept() else { return };
        self.started += 1;
        let conversion = ev.conversion;
        std::thread::Builder::new()
            .name(format!("convert-{}", self.started))
            .spawn(move || {
                if let Err(failure) = convert(end, conversion) {
                    eprintln!("conversion failed: {failure}");
                }
            })
            .expect("spawn a conversion thread");
    }

    /// In a worker process: the acceptor converts on the worker's call thread; the worker is
    /// busy until the tunnel is over.
    #[solve(process, limit = 2)]
    fn convert_in_worker(
        ev: ConvertInWorker,
        opening: Opening<ConvertInWorker>,
    ) -> Result<(), Failure> {
        let mut end = opening.accept()?;
        while let Some(mut chunk) = end.blocking_recv()? {
            convert_chunk(&mut chunk, ev.conversion);
            end.blocking_send(chunk)?;
        }
        end.close();
        Ok(())
    }
}

fn convert_chunk(chunk: &mut [u8], conversion: Conversion) {
    for b in chunk.iter_mut() {
        if let Conversion::Rot13Upper = conversion {
            *b = rot13(*b);
        }
        b.make_ascii_uppercase();
    }
}

/// The worker: converts every chunk and sends it back, until the client closed its side.
fn convert(
    mut end: edri::Tunnel<Convert, Acceptor>,
    conversion: Conversion,
) -> Result<(), Failure> {
    while let Some(mut chunk) = end.blocking_recv()? {
        convert_chunk(&mut chunk, conversion);
        end.blocking_send(chunk)?;
    }
    end.close();
    Ok(())
}

fn rot13(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
        _ => b,
    }
}

/// A text file of `bytes` bytes in a temporary directory.
fn sample(bytes: usize) -> std::io::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("edri-tunnel-{}.txt", std::process::id()));
    let line = b"the quick brown fox jumps over the lazy dog, 0123456789\n";
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..bytes {
        file.write_all(&[line[i % line.len()]])?;
    }
    file.flush()?;
    Ok(path)
}

/// Streams `input` through `tunnel` into `output`; the bytes sent and received.
async fn transfer<E: edri::TunnelEvent<Send = Chunk, Receive = Chunk>>(
    tunnel: edri::Tunnel<E>,
    input: &std::path::Path,
    output: &std::path::Path,
) -> edri::Result<(u64, u64)> {
    let mut file = std::fs::File::open(input)?;
    let (mut tx, mut rx) = tunnel.split();
    // Reading and sending on a blocking thread, receiving and writing on this task.
    let sender = tokio::task::spawn_blocking(move || -> Result<u64, Failure> {
        let mut sent = 0;
        loop {
            let mut chunk = vec![0; 64 << 10];
            let n = file.read(&mut chunk).map_err(|e| Failure::failed(e.to_string()))?;
            if n == 0 {
                tx.close();
                return Ok(sent);
            }
            chunk.truncate(n);
            sent += n as u64;
            tx.blocking_send(Chunk(chunk))?;
        }
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    let mut received = 0u64;
    while let Some(chunk) = rx.recv().await? {
        received += chunk.len() as u64;
        out.write_all(&chunk)?;
    }
    out.flush()?;
    let sent = sender.await.map_err(|e| Failure::crashed(e.to_string()))??;
    Ok((sent, received))
}

fn report(
    how: &str,
    input: &std::path::Path,
    output: &std::path::Path,
    bytes: (u64, u64),
    took: std::time::Duration,
) {
    let (sent, received) = bytes;
    println!(
        "{how}: {} -> {}: {sent} bytes sent, {received} back in {took:.2?} ({:.0} MiB/s)",
        input.display(),
        output.display(),
        received as f64 / f64::from(1 << 20) / took.as_secs_f64()
    );
    assert_eq!(sent, received, "every byte came back");
}

#[edri::main]
async fn main() -> edri::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let mut args = std::env::args().skip(1);
    let (input, output) = (args.next(), args.next());
    let generated = input.is_none();
    let input: std::path::PathBuf = match input {
        Some(path) => path.into(),
        None => sample(32 << 20)?,
    };
    let output = output.map_or_else(|| input.with_extension("out"), Into::into);
    let running = Edri::builder().start().await?;
    let ctx = running.ctx().clone();
    let bytes = std::fs::metadata(&input)?.len();
    let conversion = Conversion::Rot13Upper;

    // On a thread the acceptor hands its end to.
    let begin = Instant::now();
    let tunnel = ctx.open(Convert { conversion, bytes }).await?;
    let moved = transfer(tunnel, &input, &output).await?;
    report("on a thread", &input, &output, moved, begin.elapsed());

    // In a worker process of this binary.
    let begin = Instant::now();
    let tunnel = ctx.open(ConvertInWorker { conversion }).await?;
    let moved = transfer(tunnel, &input, &output).await?;
    report("in a worker process", &input, &output, moved, begin.elapsed());

    // A file that is too large is refused before anything is sent.
    let refused = ctx.open(Convert { conversion: Conversion::Upper, bytes: 2 << 30 }).await;
    println!(
        "a 2 GiB file: {}",
        refused.map(|_| "accepted".to_owned()).unwrap_or_else(|f| f.to_string())
    );

    if generated {
        let head = std::fs::read(&output)?;
        println!("first line back: {}", String::from_utf8_lossy(&head[..56]).trim_end());
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
    }
    running.shutdown().await
}
