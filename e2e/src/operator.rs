//! The real `watchpool-operator` binary as a child process: located (and built when missing or
//! older than its sources), started against a kubeconfig with its admin server on a free
//! loopback port and its logs in a file, and always killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::http;
use crate::procstat::{self, ProcError, ProcSample};
use crate::wait::{self, Poll, WaitTimeout};

/// Errors starting or talking to the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `cargo build -p watchpool-operator` failed or the binary is still missing.
    #[error("cannot build the watchpool-operator binary: {0}")]
    Build(String),
    /// The process could not be started or signalled.
    #[error("cannot run {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An admin request failed.
    #[error("admin request failed")]
    Http(#[from] http::HttpError),
    /// An admin endpoint answered something other than what was asked.
    #[error("admin endpoint {path} answered {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    /// `/debug/pools` was not JSON.
    #[error("admin endpoint {path} returned invalid JSON")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Reading the process's counters failed.
    #[error("cannot sample the operator process")]
    Proc(#[from] ProcError),
    /// A wait did not succeed in time.
    #[error(transparent)]
    Wait(#[from] WaitTimeout),
    /// The process exited before it was ready.
    #[error("the operator exited before it was ready; last log lines:\n{log}")]
    Exited { log: String },
}

/// True when process `pid` is gone or a zombie waiting to be reaped.
pub fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// How to start the operator. `Default` gives short intervals suited to tests.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// `--trusted-namespaces` (empty: the flag is not passed).
    pub trusted_namespaces: Vec<String>,
    /// `--status-interval`.
    pub status_interval: String,
    /// `--leader-election`.
    pub leader_election: bool,
    /// `--lease-name`.
    pub lease_name: Option<String>,
    /// `--lease-duration`.
    pub lease_duration: Option<String>,
    /// `--shutdown-timeout`.
    pub shutdown_timeout: String,
    /// `--log-level`.
    pub log_level: String,
    /// `POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `POD_NAME` (also used in the log file name).
    pub pod_name: String,
    /// More arguments after the others.
    pub extra_args: Vec<String>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            trusted_namespaces: Vec::new(),
            status_interval: "1s".into(),
            leader_election: false,
            lease_name: None,
            lease_duration: None,
            shutdown_timeout: "5s".into(),
            log_level: "info,watchpool_engine=debug,watchpool_operator=debug".into(),
            pod_namespace: None,
            pod_name: "watchpool-operator-0".into(),
            extra_args: Vec::new(),
        }
    }
}

/// A running operator process. Killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    pid: u32,
    admin: SocketAddr,
    log: PathBuf,
    name: String,
}

static BUILD: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The target directory's profile folder holding this executable (`target/debug`).
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                newest_mtime(&entry.path(), newest);
            }
        }
    } else if let Ok(modified) = meta.modified() {
        *newest = (*newest).max(modified);
    }
}

/// True when the binary is older than any source it is built from.
fn is_stale(binary: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return true;
    };
    let root = crate::tools::workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for source in [
        "operator/src",
        "operator/Cargo.toml",
        "operator/engine/src",
        "operator/engine/Cargo.toml",
        "crds/src",
        "crds/Cargo.toml",
        "Cargo.lock",
    ] {
        newest_mtime(&root.join(source), &mut newest);
    }
    newest > built
}

/// The path of the `watchpool-operator` binary: `$WATCHPOOL_OPERATOR_BIN`, or the one next to
/// this executable in the same target directory, built with `cargo build -p
/// watchpool-operator` (with `--release` when this executable is in `release/`) first when it
/// is missing or older than its sources.
pub fn binary() -> Result<PathBuf, OperatorError> {
    if let Some(path) = std::env::var_os("WATCHPOOL_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let mut built = BUILD
        .lock()
        .map_err(|_| OperatorError::Build("a previous build attempt panicked".into()))?;
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let profile = profile_dir().ok_or_else(|| OperatorError::Build("no current exe".into()))?;
    let binary = profile.join("watchpool-operator");
    if is_stale(&binary) {
        let target_dir = profile
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| OperatorError::Build("no target dir".into()))?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building watchpool-operator into {}", target_dir.display());
        let mut args = vec![
            "build",
            "-p",
            "watchpool-operator",
            "--bin",
            "watchpool-operator",
        ];
        if profile.file_name().is_some_and(|name| name == "release") {
            args.push("--release");
        }
        let output = Command::new(cargo)
            .args(&args)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(crate::tools::workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| OperatorError::Io {
                what: "cargo build".into(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            if binary.is_file() {
                // Sources being edited may not build for a moment; an older binary still
                // exercises the scenarios.
                eprintln!(
                    "warning: cargo build -p watchpool-operator failed; using the existing, older {}:\n{}",
                    binary.display(),
                    tail.join("\n")
                );
            } else {
                return Err(OperatorError::Build(format!(
                    "cargo build -p watchpool-operator exited with {}:\n{}",
                    output.status,
                    tail.join("\n")
                )));
            }
        }
        if !binary.is_file() {
            return Err(OperatorError::Build(format!(
                "{} is missing after the build",
                binary.display()
            )));
        }
    }
    *built = Some(binary.clone());
    Ok(binary)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, OperatorError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| OperatorError::Io {
            what: "bind 127.0.0.1:0".into(),
            source,
        })
}

impl Operator {
    /// Starts `watchpool-operator run` against `kubeconfig`, logging into `log_dir`.
    pub fn spawn(
        kubeconfig: &Path,
        log_dir: &Path,
        options: &OperatorOptions,
    ) -> Result<Self, OperatorError> {
        let bin = binary()?;
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = log_dir.join(format!("{}.log", options.pod_name));
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| OperatorError::Io { what, source }
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io("open the operator log"))?;
        let err = out.try_clone().map_err(io("open the operator log"))?;
        let mut command = Command::new(&bin);
        command
            .arg("run")
            .arg("--admin-addr")
            .arg(admin.to_string())
            .arg("--status-interval")
            .arg(&options.status_interval)
            .arg("--shutdown-timeout")
            .arg(&options.shutdown_timeout)
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("--log-format")
            .arg("text");
        if !options.trusted_namespaces.is_empty() {
            command
                .arg("--trusted-namespaces")
                .arg(options.trusted_namespaces.join(","));
        }
        if options.leader_election {
            command.arg("--leader-election");
        }
        if let Some(name) = &options.lease_name {
            command.arg("--lease-name").arg(name);
        }
        if let Some(duration) = &options.lease_duration {
            command.arg("--lease-duration").arg(duration);
        }
        command.args(&options.extra_args);
        command
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", &options.pod_name)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        match &options.pod_namespace {
            Some(ns) => command.env("POD_NAMESPACE", ns),
            None => command.env_remove("POD_NAMESPACE"),
        };
        let child = command.spawn().map_err(io("watchpool-operator"))?;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            admin,
            log,
            name: options.pod_name.clone(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The `POD_NAME` it runs as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// CPU, fds, threads and RSS of the process now.
    pub fn sample(&self) -> Result<ProcSample, OperatorError> {
        Ok(procstat::sample(self.pid)?)
    }

    /// `GET <admin><path>`; fails unless 200.
    pub async fn admin_get(&self, path: &str) -> Result<String, OperatorError> {
        let response = http::get(self.admin, path, Duration::from_secs(5)).await?;
        if response.status != 200 {
            return Err(OperatorError::Status {
                path: path.into(),
                status: response.status,
                body: response.body,
            });
        }
        Ok(response.body)
    }

    /// `/debug/pools`, parsed.
    pub async fn debug_pools(&self) -> Result<serde_json::Value, OperatorError> {
        let body = self.admin_get("/debug/pools").await?;
        serde_json::from_str(&body).map_err(|source| OperatorError::Json {
            path: "/debug/pools".into(),
            source,
        })
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> Result<String, OperatorError> {
        self.admin_get("/metrics").await
    }

    /// Waits until `/readyz` answers 200; fails at once when the process exits.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<Duration, OperatorError> {
        let admin = self.admin;
        let pid = self.pid;
        let (outcome, took) = wait::until(
            "the operator's /readyz to answer 200",
            deadline,
            Duration::from_millis(100),
            || async move {
                if has_exited(pid) {
                    return Poll::Ready(Err(()));
                }
                match http::get(admin, "/readyz", Duration::from_secs(2)).await {
                    Ok(r) if r.status == 200 => Poll::Ready(Ok(())),
                    Ok(r) => Poll::Pending(format!("{} {}", r.status, r.body.trim())),
                    Err(e) => Poll::Pending(e.to_string()),
                }
            },
        )
        .await?;
        match outcome {
            Ok(()) => Ok(took),
            Err(()) => Err(OperatorError::Exited {
                log: self.log_tail(20),
            }),
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) -> Result<(), OperatorError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().map_err(|source| OperatorError::Io {
                what: "wait for the operator".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// Sends SIGTERM (through `kill`, the workspace forbids `unsafe`) and waits up to `deadline`
    /// for the exit. Returns the exit status and the time it took, or `None` if still running.
    pub async fn terminate(
        &mut self,
        deadline: Duration,
    ) -> Result<Option<(ExitStatus, Duration)>, OperatorError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|source| OperatorError::Io {
                what: "kill -TERM".into(),
                source,
            })?;
        if !status.success() {
            return Err(OperatorError::Io {
                what: "kill -TERM".into(),
                source: std::io::Error::other(format!("kill exited with {status}")),
            });
        }
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Ok(Some((status, start.elapsed())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(None)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}\n---- end of log ----",
                self.name,
                self.log.display(),
                self.log_tail(60)
            );
        }
    }
}
