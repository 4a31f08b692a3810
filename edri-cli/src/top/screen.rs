//! The live view's terminal: the alternate screen with plain ANSI sequences, and single key
//! presses read from standard input (`stty -icanon -echo` while it runs, restored after).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::{Command, Stdio};
use tokio::sync::mpsc;

/// The alternate screen, cursor hidden.
const ENTER: &str = "\x1b[?1049h\x1b[?25l";
/// Back to the normal screen, cursor shown.
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";
/// Cursor home, screen cleared.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The terminal while the live view runs; restored when dropped.
pub(crate) struct Screen {
    /// The terminal settings to restore (`stty -g`), when standard input is a terminal.
    saved: Option<String>,
}

impl Screen {
    /// Switches to the alternate screen and, on a terminal, to reading single keys.
    pub(crate) fn enter() -> Self {
        let saved = std::io::stdin().is_terminal().then(|| stty(&["-g"])).flatten();
        if saved.is_some() {
            let _ = stty(&["-icanon", "-echo", "min", "1", "time", "0"]);
        }
        print_flushed(ENTER);
        Self { saved }
    }

    /// Replaces what is shown with `frame`, cut to the terminal's size when it is known.
    pub(crate) fn draw(&self, frame: &str) {
        let size = self.saved.as_ref().and_then(|_| stty(&["size"]));
        let size = size.as_deref().and_then(|s| s.trim().split_once(' '));
        let (rows, columns) = size
            .and_then(|(r, c)| Some((r.parse::<usize>().ok()?, c.parse::<usize>().ok()?)))
            .unwrap_or((usize::MAX, usize::MAX));
        let mut text = String::from(CLEAR);
        // Raw-ish mode leaves output processing on, so `\n` still returns the carriage.
        for line in frame.lines().take(rows.saturating_sub(1).max(1)) {
            text.extend(line.chars().take(columns));
            text.push('\n');
        }
        print_flushed(&text);
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        print_flushed(LEAVE);
        if let Some(saved) = &self.saved {
            let _ = stty(&[saved.trim()]);
        }
    }
}

fn print_flushed(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Runs `stty` on the terminal of standard input; its output when it succeeded.
fn stty(args: &[&str]) -> Option<String> {
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Key presses (bytes of standard input), read on a thread of their own: a thread blocked in
/// `read` does not keep the process from exiting, where a runtime's blocking task would.
/// Nothing comes once standard input ends.
pub(crate) fn keys() -> mpsc::UnboundedReceiver<u8> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            if tx.send(byte[0]).is_err() {
                return;
            }
        }
    });
    rx
}
