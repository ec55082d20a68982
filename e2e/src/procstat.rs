//! What the kernel says about a process: CPU time, open file descriptors, threads and RSS,
//! read from `/proc/<pid>`. These are the figures the "no spin" and "no leak" judges use.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcSample {
    /// When it was taken.
    pub at: Instant,
    /// User + system CPU time consumed so far.
    pub cpu: Duration,
    /// Open file descriptors (sockets included).
    pub fds: usize,
    /// Threads of the process.
    pub threads: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Errors reading `/proc`.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A file under `/proc/<pid>` could not be read (the process may have exited).
    #[error("cannot read /proc/{pid}/{file}")]
    Read {
        pid: u32,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A file had an unexpected shape.
    #[error("unexpected format of /proc/{pid}/{file}")]
    Format { pid: u32, file: &'static str },
}

/// Clock ticks per second of the `stat` CPU fields (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}

/// Reads the counters of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let at = Instant::now();
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|source| ProcError::Read {
            pid,
            file: "stat",
            source,
        })?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or(ProcError::Format { pid, file: "stat" })?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime = field 14, stime = 15, num_threads = 20, rss = 24.
    let field = |i: usize| -> Result<u64, ProcError> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or(ProcError::Format { pid, file: "stat" })
    };
    let ticks = field(11)? + field(12)?;
    let threads = field(17)?;
    let cpu = Duration::from_micros(ticks * 1_000_000 / clock_ticks());
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|source| ProcError::Read {
            pid,
            file: "fd",
            source,
        })?
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|source| {
        ProcError::Read {
            pid,
            file: "status",
            source,
        }
    })?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(ProcError::Format {
            pid,
            file: "status",
        })?;
    Ok(ProcSample {
        at,
        cpu,
        fds,
        threads,
        rss_bytes: rss_kib * 1024,
    })
}

impl ProcSample {
    /// CPU used between `earlier` and `self`, in percent of one core.
    pub fn cpu_pct_since(&self, earlier: &ProcSample) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let cpu = self.cpu.saturating_sub(earlier.cpu).as_secs_f64();
        100.0 * cpu / wall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_of_this_process_sees_its_own_cpu_and_fds() {
        let pid = std::process::id();
        let before = sample(pid).unwrap();
        let start = Instant::now();
        let mut x: u64 = 0;
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let after = sample(pid).unwrap();
        assert!(
            after.cpu > before.cpu,
            "a busy loop must show up as CPU time"
        );
        assert!(after.cpu_pct_since(&before) > 30.0);
        assert!(
            after.fds > before.fds,
            "an opened file must show up as an fd"
        );
        assert!(after.rss_bytes > 0 && after.threads >= 1);
        drop(file);
    }
}
