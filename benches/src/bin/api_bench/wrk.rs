//! Running `wrk` against one URL and reading its report.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How `wrk` is run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// `-c`: connections kept open.
    pub connections: u32,
    /// `-t`: wrk's threads.
    pub threads: u32,
    /// `-d`: how long one run lasts.
    pub duration: Duration,
}

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// Requests completed per second.
    pub rate: f64,
    /// Latency percentiles (50, 75, 90, 99) and the mean.
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub mean: Duration,
    /// Responses that were not 2xx/3xx, and socket errors (connect, read, write, timeout).
    pub bad: u64,
    /// Requests completed.
    pub requests: u64,
    /// CPU time the serving process spent meanwhile (user + system, all its threads).
    pub cpu: Duration,
}

impl Report {
    /// CPU time of the serving process per request.
    pub fn cpu_per_request(&self) -> Duration {
        self.cpu
            .checked_div(u32::try_from(self.requests.max(1)).unwrap_or(u32::MAX))
            .unwrap_or_default()
    }

    /// Slices of one run taken together: requests and CPU summed, the rate over their total
    /// time, the mean and p50 averaged, p90 and p99 the worst slice's.
    pub fn combine(slices: &[Self]) -> Self {
        let n = slices.len().max(1) as f64;
        let seconds: f64 = slices.iter().map(|s| s.requests as f64 / s.rate.max(1e-9)).sum();
        let requests = slices.iter().map(|s| s.requests).sum::<u64>();
        let avg = |f: fn(&Self) -> Duration| slices.iter().map(f).sum::<Duration>().div_f64(n);
        let worst = |f: fn(&Self) -> Duration| slices.iter().map(f).max().unwrap_or_default();
        Self {
            rate: requests as f64 / seconds.max(1e-9),
            mean: avg(|s| s.mean),
            p50: avg(|s| s.p50),
            p90: worst(|s| s.p90),
            p99: worst(|s| s.p99),
            bad: slices.iter().map(|s| s.bad).sum(),
            requests,
            cpu: slices.iter().map(|s| s.cpu).sum(),
        }
    }
}

/// CPU time this process has used so far (user + system), from `/proc/self/stat` (in clock
/// ticks of 10 ms, Linux's `USER_HZ`).
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 =
        rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>7.0} req/s  {:>5.1} µs CPU/req  mean {:>6.2} ms  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms",
            self.rate,
            self.cpu_per_request().as_secs_f64() * 1e6,
            ms(self.mean),
            ms(self.p50),
            ms(self.p90),
            ms(self.p99)
        )?;
        if self.bad > 0 {
            write!(f, "  ({} non-2xx or socket errors)", self.bad)?;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The error to show when `wrk` cannot be started.
pub fn missing(e: &std::io::Error) -> String {
    format!(
        "cannot run `wrk` ({e}); install it first (Debian: `apt-get install -y wrk`), or put it \
         on PATH"
    )
}

/// Runs `wrk` against `url` (`script`: a Lua file setting the method, body and headers).
pub fn run(url: &str, script: Option<&Path>, load: Load) -> Result<Report, String> {
    let mut wrk = Command::new("wrk");
    wrk.arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--latency");
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    let cpu = process_cpu();
    let out = wrk.arg(url).output().map_err(|e| missing(&e))?;
    let cpu = process_cpu().saturating_sub(cpu);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report = parse(&text).ok_or_else(|| format!("cannot read wrk's report:\n{text}"))?;
    Ok(Report { cpu, ..report })
}

/// Reads `wrk --latency`'s report.
fn parse(text: &str) -> Option<Report> {
    let mut report = Report::default();
    let mut seen_rate = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => {
                report.rate = rate.parse().ok()?;
                seen_rate = true;
            }
            ["Latency", mean, _stdev, _max, _within] => report.mean = duration(mean)?,
            ["50%", d] => report.p50 = duration(d)?,
            ["90%", d] => report.p90 = duration(d)?,
            ["99%", d] => report.p99 = duration(d)?,
            [n, "requests", "in", ..] => report.requests = n.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => report.bad += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // `connect 0, read 0, write 0, timeout 0`
                report.bad += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    seen_rate.then_some(report)
}

/// `812.00us`, `1.23ms`, `2.01s`.
fn duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report() {
        let text = "Running 5s test @ http://127.0.0.1:1/x
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50ms  300.00us   8.00ms   90.00%
    Req/Sec    60.00k     2.00k   70.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.40ms
     90%    2.00ms
     99%    3.00ms
  600000 requests in 5.00s, 70.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 120000.50
Transfer/sec:     14.00MB
";
        let r = parse(text).unwrap();
        assert!((r.rate - 120_000.5).abs() < 1e-6);
        assert_eq!(r.p50, Duration::from_micros(812));
        assert_eq!(r.p99, Duration::from_millis(3));
        assert_eq!(r.mean, Duration::from_micros(1500));
        assert_eq!(r.bad, 7);
        assert_eq!(r.requests, 600_000);
    }
}
