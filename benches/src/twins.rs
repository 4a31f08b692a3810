//! Raw twins of the thread and process handler modes (`benches/modes.rs`): the same round trip
//! (`x` in, `x + 1` out, from an async caller) written without EDRI.
//!
//! - [`ThreadTwin`]: one persistent std thread fed by a `std::sync::mpsc` channel, answering
//!   through a tokio oneshot (the thread parks in the channel's `recv` between calls, as a
//!   `limit = 1` thread handler's pool thread parks between calls).
//! - [`ProcessTwin`]: a child process of the same binary (started with [`ECHO_ENV`], like an
//!   EDRI worker with `EDRI_WORKER`) joined by its stdin/stdout pipes: the caller writes one
//!   length-prefixed frame (a little-endian `u32` length, then the 8-byte `x`) and reads the
//!   reply frame (`x + 1`) through a buffered reader; the child reads and answers on its main
//!   thread with blocking I/O.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

/// The environment variable that makes a process of a bench binary the process twin's echo
/// child.
pub const ECHO_ENV: &str = "EDRI_BENCH_ECHO";

/// A request for the thread twin: the input and where its answer goes.
type ThreadCall = (u64, oneshot::Sender<u64>);

/// One std thread answering `x + 1` over a channel.
#[derive(Debug, Clone)]
pub struct ThreadTwin {
    calls: std::sync::mpsc::Sender<ThreadCall>,
}

impl ThreadTwin {
    /// Starts the thread (it ends when every clone of the twin is dropped).
    pub fn start() -> Self {
        let (calls, queue) = std::sync::mpsc::channel::<ThreadCall>();
        std::thread::Builder::new()
            .name("thread-twin".into())
            .spawn(move || {
                for (x, answer) in queue {
                    let _ = answer.send(x + 1);
                }
            })
            .expect("thread twin");
        Self { calls }
    }

    /// One round trip.
    pub async fn call(&self, x: u64) -> u64 {
        let (answer, answered) = oneshot::channel();
        self.calls.send((x, answer)).expect("thread twin alive");
        answered.await.expect("thread twin answer")
    }
}

/// A child echo process and the parent's ends of its pipes (behind an async mutex, as EDRI's
/// pool keeps its idle workers behind a mutex: one call at a time).
#[derive(Debug)]
pub struct ProcessTwin {
    _child: Child,
    pipes: tokio::sync::Mutex<Pipes>,
}

#[derive(Debug)]
struct Pipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ProcessTwin {
    /// Starts the child (killed when the twin is dropped). Call in a tokio runtime.
    pub fn start() -> Self {
        let exe = std::env::current_exe().expect("this binary");
        let mut child = Command::new(exe)
            .env(ECHO_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("echo child");
        let stdin = child.stdin.take().expect("child stdin");
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        Self { _child: child, pipes: tokio::sync::Mutex::new(Pipes { stdin, stdout }) }
    }

    /// One round trip: a request frame out, the reply frame in.
    pub async fn call(&self, x: u64) -> u64 {
        let mut pipes = self.pipes.lock().await;
        let Pipes { stdin, stdout } = &mut *pipes;
        let mut frame = [0u8; 12];
        frame[..4].copy_from_slice(&8u32.to_le_bytes());
        frame[4..].copy_from_slice(&x.to_le_bytes());
        stdin.write_all(&frame).await.expect("write to the echo child");
        stdin.flush().await.expect("flush to the echo child");
        let mut prefix = [0u8; 4];
        stdout.read_exact(&mut prefix).await.expect("reply length");
        let mut body = vec![0u8; u32::from_le_bytes(prefix) as usize];
        stdout.read_exact(&mut body).await.expect("reply body");
        u64::from_le_bytes(body.try_into().expect("an 8-byte reply"))
    }
}

/// Serves as the echo child when this process was started as one (then exits); returns at
/// once otherwise. Call it first in `main`.
pub fn serve_echo_if_child() {
    if std::env::var_os(ECHO_ENV).is_none() {
        return;
    }
    let mut input = std::io::stdin().lock();
    // Unbuffered: one `write` per reply frame.
    let mut output = std::fs::File::from(
        std::io::stdout().as_fd().try_clone_to_owned().expect("a copy of stdout"),
    );
    let mut prefix = [0u8; 4];
    let mut body = Vec::new();
    while input.read_exact(&mut prefix).is_ok() {
        body.resize(u32::from_le_bytes(prefix) as usize, 0);
        if input.read_exact(&mut body).is_err() {
            break;
        }
        let x = u64::from_le_bytes(body.as_slice().try_into().expect("an 8-byte request"));
        let mut reply = [0u8; 12];
        reply[..4].copy_from_slice(&8u32.to_le_bytes());
        reply[4..].copy_from_slice(&(x + 1).to_le_bytes());
        if output.write_all(&reply).is_err() {
            break;
        }
    }
    std::process::exit(0);
}
