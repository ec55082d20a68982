//! The real kubectl, pointed at the test cluster by a kubeconfig, with its own cache dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Errors of a kubectl invocation.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    /// kubectl could not be started.
    #[error("cannot run kubectl")]
    Spawn(#[source] std::io::Error),
    /// kubectl ran longer than allowed.
    #[error("kubectl {args} did not finish within {timeout:?}")]
    Timeout { args: String, timeout: Duration },
    /// kubectl exited with a failure.
    #[error("kubectl {args} failed ({code:?}): {stderr}")]
    Failed {
        args: String,
        code: Option<i32>,
        stderr: String,
    },
    /// kubectl's output was not the JSON asked for.
    #[error("kubectl {args} printed invalid JSON")]
    Json {
        args: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The output of a finished kubectl.
#[derive(Clone, Debug)]
pub struct KubectlOutput {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// True when kubectl exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A configured kubectl.
#[derive(Clone, Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    /// Deadline of each invocation.
    pub timeout: Duration,
}

impl Kubectl {
    /// kubectl `bin` using `kubeconfig` and caching discovery in `cache_dir`.
    pub fn new(bin: PathBuf, kubeconfig: &Path, cache_dir: &Path) -> Self {
        Self {
            bin,
            kubeconfig: kubeconfig.to_owned(),
            cache_dir: cache_dir.to_owned(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl <args>` (with `stdin` piped in when given) and returns its output, whatever
    /// its exit code.
    pub async fn output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<KubectlOutput, KubectlError> {
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(KubectlError::Spawn)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(KubectlError::Spawn)?;
            drop(pipe);
        }
        let joined = args.join(" ");
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| KubectlError::Timeout {
                args: joined.clone(),
                timeout: self.timeout,
            })?
            .map_err(KubectlError::Spawn)?;
        Ok(KubectlOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `kubectl <args>` and fails unless it exits with 0; returns stdout.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, KubectlError> {
        let output = self.output(args, stdin).await?;
        if output.success() {
            Ok(output.stdout)
        } else {
            Err(KubectlError::Failed {
                args: args.join(" "),
                code: output.code,
                stderr: output.stderr,
            })
        }
    }

    /// `kubectl <args> -o json`, parsed.
    pub async fn json(&self, args: &[&str]) -> Result<serde_json::Value, KubectlError> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let stdout = self.run(&all, None).await?;
        serde_json::from_str(&stdout).map_err(|source| KubectlError::Json {
            args: all.join(" "),
            source,
        })
    }

    /// `kubectl apply -f -` of a YAML document (or several), returning the full output so that
    /// a caller can assert a refusal.
    pub async fn apply_output(&self, yaml: &str) -> Result<KubectlOutput, KubectlError> {
        self.output(&["apply", "-f", "-"], Some(yaml)).await
    }

    /// `kubectl apply -f -`; fails unless kubectl accepted it.
    pub async fn apply(&self, yaml: &str) -> Result<String, KubectlError> {
        self.run(&["apply", "-f", "-"], Some(yaml)).await
    }
}
