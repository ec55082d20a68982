//! Benchmarks of watchpool side by side with kube-runtime's `watcher()` (and reflector store),
//! in one run against one in-process [`kube_emulator::Emulator`].
//!
//! The parent process runs the emulator and the scenario; each measured side runs in a child
//! process (this same binary, re-executed with a hidden `pool-child` or `peer-child`
//! subcommand, see [`child`]), so that CPU time (`utime + stime` from `/proc/<pid>/stat`) and
//! memory (`VmRSS` from `/proc/<pid>/status`) of one side never mix with the other's or the
//! emulator's.

pub mod child;
pub mod driver;
pub mod objects;
pub mod procstat;
pub mod report;
pub mod scenarios;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading or writing a pipe, a file or `/proc` failed.
    #[error("i/o error")]
    Io(#[source] std::io::Error),
    /// A JSON document could not be read or written.
    #[error("json error")]
    Json(#[source] serde_json::Error),
    /// The kube client could not be built.
    #[error("kube client error")]
    Kube(#[source] kube::Error),
    /// The emulator could not start.
    #[error("emulator error")]
    Emulator(#[source] kube_emulator::Error),
    /// The emulator refused a write.
    #[error("emulator refused a write: {0}")]
    Write(String),
    /// A child process misbehaved or a condition was not reached in time.
    #[error("{0}")]
    Setup(String),
}
