//! The parent's side: spawning and driving the measured children, and reading the emulator's
//! request log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube_emulator::{Emulator, EmulatorConfig, RequestRecord};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::BenchError;
use crate::child::{ChildSpec, ChildStats, Side, WaitAnswer};
use crate::procstat;

/// What every scenario needs: the binary to re-execute for the children.
#[derive(Clone, Debug)]
pub struct Bench {
    /// This benchmark binary (children run it with `pool-child` / `peer-child`).
    pub exe: PathBuf,
}

impl Bench {
    /// Uses the running executable.
    pub fn current() -> Result<Bench, BenchError> {
        Ok(Bench {
            exe: std::env::current_exe().map_err(BenchError::Io)?,
        })
    }

    /// Starts a child for `spec`.
    pub async fn spawn(&self, spec: &ChildSpec) -> Result<ChildProc, BenchError> {
        ChildProc::spawn(&self.exe, spec).await
    }
}

/// A running measured child.
pub struct ChildProc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Its process id.
    pub pid: u32,
}

impl ChildProc {
    /// Spawns `exe pool-child|peer-child --spec <json>`.
    pub async fn spawn(exe: &Path, spec: &ChildSpec) -> Result<ChildProc, BenchError> {
        let sub = match spec.side {
            Side::Pool => "pool-child",
            Side::Peer => "peer-child",
        };
        let json = serde_json::to_string(spec).map_err(BenchError::Json)?;
        // A profiler can wrap one side: `WATCHPOOL_BENCH_WRAP_POOL="valgrind --tool=callgrind"`.
        let wrap_var = match spec.side {
            Side::Pool => "WATCHPOOL_BENCH_WRAP_POOL",
            Side::Peer => "WATCHPOOL_BENCH_WRAP_PEER",
        };
        let wrapper: Vec<String> = std::env::var(wrap_var)
            .map(|w| w.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg(sub)
            .arg("--spec")
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(BenchError::Io)?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| BenchError::Setup("child has no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("child has no stdout".into()))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("child exited at once".into()))?;
        Ok(ChildProc {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            pid,
        })
    }

    /// Sends one command and reads its one-line JSON answer.
    pub async fn command<T: DeserializeOwned>(&mut self, cmd: &str) -> Result<T, BenchError> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(BenchError::Io)?;
        self.stdin.flush().await.map_err(BenchError::Io)?;
        let line = self
            .stdout
            .next_line()
            .await
            .map_err(BenchError::Io)?
            .ok_or_else(|| BenchError::Setup(format!("child {} closed its output", self.pid)))?;
        serde_json::from_str(&line).map_err(BenchError::Json)
    }

    /// The child's counters.
    pub async fn stats(&mut self) -> Result<ChildStats, BenchError> {
        self.command("stats").await
    }

    /// Waits until the child has found an object called `name` (see [`crate::child`]).
    pub async fn wait_object(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<WaitAnswer, BenchError> {
        self.command(&format!("wait-object {name} {}", timeout.as_millis()))
            .await
    }

    /// Pool only: waits until some watch is in `state` (`Stalled`, `Watching`…).
    pub async fn wait_state(
        &mut self,
        state: &str,
        timeout: Duration,
    ) -> Result<WaitAnswer, BenchError> {
        self.command(&format!("wait-state {state} {}", timeout.as_millis()))
            .await
    }

    /// Polls `stats` until `done` holds, or fails after `timeout`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&ChildStats) -> bool,
    ) -> Result<ChildStats, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats().await?;
            if done(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "child {}: {what} not reached within {timeout:?} (last {stats:?})",
                    self.pid
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `watches` watches are synced and `objects` objects cached (when given).
    pub async fn wait_synced(
        &mut self,
        watches: u64,
        objects: Option<u64>,
        timeout: Duration,
    ) -> Result<ChildStats, BenchError> {
        self.wait_until("sync", timeout, |s| {
            s.synced >= watches && objects.is_none_or(|n| s.objects >= n)
        })
        .await
    }

    /// CPU seconds (`utime + stime`) the child used so far.
    pub fn cpu_seconds(&self) -> f64 {
        procstat::cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// The child's resident set size in bytes.
    pub fn rss_bytes(&self) -> u64 {
        procstat::rss_bytes(self.pid).unwrap_or(0)
    }

    /// Asks the child to exit and waits for it (kills it after 5 s).
    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Waits until the RSS of `pid` has not moved by more than 1 % over 500 ms (or 5 s passed);
/// returns the last reading.
pub async fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = procstat::rss_bytes(pid).unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = procstat::rss_bytes(pid).unwrap_or(0);
        let moved = now.abs_diff(last) as f64 / last.max(1) as f64;
        last = now;
        if moved < 0.01 || Instant::now() >= deadline {
            return now;
        }
    }
}

/// Starts an emulator for a benchmark: events kept and buffered generously so that bursts
/// replay in full.
pub async fn start_emulator(config: EmulatorConfig) -> Result<Emulator, BenchError> {
    Emulator::start(config).await.map_err(BenchError::Emulator)
}

/// An emulator configuration for benchmarks: `history` events kept, `buffer` events a
/// watch may lag.
pub fn emulator_config(history: usize, buffer: usize) -> EmulatorConfig {
    EmulatorConfig {
        history,
        watch_buffer: buffer,
        ..EmulatorConfig::default()
    }
}

/// The sequence number of the latest request in the log (0 when empty).
pub fn last_seq(emu: &Emulator) -> u64 {
    emu.requests().last().map_or(0, |r| r.seq)
}

/// Requests after `after_seq` (and up to `until_seq` when given) whose namespace starts with
/// `prefix`, without the `FAULT` records.
pub fn requests_in(
    emu: &Emulator,
    prefix: &str,
    after_seq: u64,
    until_seq: Option<u64>,
) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| {
            r.seq > after_seq
                && until_seq.is_none_or(|u| r.seq <= u)
                && r.method != "FAULT"
                && r.namespace.starts_with(prefix)
        })
        .collect()
}

/// A request's arrival time in milliseconds since the epoch.
pub fn record_ms(r: &RequestRecord) -> Option<i64> {
    r.time
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Percentage helper: `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}
