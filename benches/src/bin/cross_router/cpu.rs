//! CPU time per operation of the processes a workload runs through: the driver (this process),
//! its receiver, and the switch, relay or nats-server between them, read from
//! `/proc/<pid>/stat` before and after the workload. On a shared VM the rates move from run to
//! run with the neighbours' load; the CPU an operation costs moves much less.

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The processes of one run, by role.
#[derive(Clone, Default)]
pub(crate) struct Parts(pub(crate) Vec<(&'static str, u32)>);

/// Each part's CPU time at one moment, in ticks (`None`: not readable).
pub(crate) struct Taken(Vec<Option<u64>>);

/// The command name of process `pid` and the fields of `/proc/<pid>/stat` after it (from the
/// state, field 3 of proc(5), on).
fn stat(pid: u32) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields follow its last `)`.
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    Some((name, tail.split_whitespace().map(str::to_owned).collect()))
}

/// User plus system CPU time of process `pid` (all its threads), in ticks.
fn ticks(pid: u32) -> Option<u64> {
    let (_, fields) = stat(pid)?;
    // Fields 14 and 15 of proc(5).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The first process named `comm` whose parent (field 4) is `parent`.
pub(crate) fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let (name, fields) = stat(pid)?;
        let ppid: u32 = fields.get(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

impl Parts {
    pub(crate) fn take(&self) -> Taken {
        Taken(self.0.iter().map(|(_, pid)| ticks(*pid)).collect())
    }

    /// Microseconds of CPU per operation since `before`: a line by part, and the sum (`NaN`
    /// when a part could not be read).
    pub(crate) fn per_op(&self, before: &Taken, ops: u64) -> (String, f64) {
        let after = self.take();
        let mut line = Vec::new();
        let mut all = 0.0;
        for (((name, _), a), b) in self.0.iter().zip(&after.0).zip(&before.0) {
            let us = match (a, b) {
                (Some(a), Some(b)) => {
                    a.saturating_sub(*b) as f64 / TICKS_PER_SEC * 1e6 / ops.max(1) as f64
                }
                _ => f64::NAN,
            };
            all += us;
            line.push(format!("{name} {us:.2}"));
        }
        (format!("cpu per op (µs): {}, all {all:.2}", line.join(", ")), all)
    }
}
