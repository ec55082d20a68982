//! Shared harness of the operator's integration tests: an in-process emulator with the
//! WatchPolicy CRD installed, and the real operator binary run against it over real sockets.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test harness: failing loudly is the point

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_watchpool-operator");

/// An emulator with the CRD, and a temporary directory holding its kubeconfig.
pub struct Cluster {
    pub emu: Emulator,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

pub async fn cluster() -> Cluster {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let crd = serde_json::to_value(watchpool_api::crd()).unwrap();
    emu.create(crd).expect("crd created");
    let dir = std::env::temp_dir().join(format!(
        "watchpool-operator-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    // Wait until the CRD is served.
    wait_for("the crd to be served", Duration::from_secs(10), || {
        emu.list("watchpool.dev/v1alpha1", "WatchPolicy", None)
            .is_ok()
    })
    .await;
    Cluster {
        emu,
        dir,
        kubeconfig,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The kubeconfig and any files a test wrote next to it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    pub fn namespace(&self, name: &str) {
        let _ = self
            .emu
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    }

    /// Creates a policy. It is stored without the CRD's schema and CEL checks, as a server
    /// that does not enforce them would, so that tests reach the operator's own validation.
    pub fn policy(&self, namespace: &str, name: &str, spec: Value) -> Value {
        self.emu
            .create_unvalidated(json!({
                "apiVersion": "watchpool.dev/v1alpha1",
                "kind": "WatchPolicy",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }))
            .expect("policy created")
    }

    pub fn get_policy(&self, namespace: &str, name: &str) -> Option<Value> {
        self.emu
            .get("watchpool.dev/v1alpha1", "WatchPolicy", namespace, name)
            .ok()
    }

    pub fn condition(&self, namespace: &str, name: &str, type_: &str) -> Option<Value> {
        let p = self.get_policy(namespace, name)?;
        p.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// Status PATCHes to one policy, from the request log.
    pub fn status_writes(&self, namespace: &str, name: &str) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.path.ends_with("/status")
                    && r.namespace == namespace
                    && r.name == name
                    && (200..300).contains(&r.status)
            })
            .count()
    }
}

/// A running operator process; killed when dropped.
pub struct Operator {
    pub child: Child,
    pub admin: SocketAddr,
    pub lines: Arc<Mutex<Vec<String>>>,
}

/// Starts the operator with JSON logs; `extra` flags and `envs` are added.
pub async fn start_operator(cluster: &Cluster, extra: &[&str], envs: &[(&str, &str)]) -> Operator {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").args(["--admin-addr", "127.0.0.1:0"]);
    if !extra.contains(&"--log-format") {
        cmd.args(["--log-format", "json"]);
    }
    if !extra.contains(&"--status-interval") {
        cmd.args(["--status-interval", "1s"]);
    }
    cmd.args(extra)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("POD_NAMESPACE")
        .env_remove("WATCHPOOL_TRUSTED_NAMESPACES")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("operator starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if std::env::var("WATCHPOOL_TEST_ECHO").is_ok() {
                    eprintln!("[operator] {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = loop {
        if let Some(addr) = lines.lock().unwrap().iter().find_map(|l| {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                return (v["fields"]["message"] == "admin server listening")
                    .then(|| v["fields"]["addr"].as_str()?.parse().ok())?;
            }
            // Text format: `... admin server listening addr=127.0.0.1:PORT`
            let rest = l.split("admin server listening addr=").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        }) {
            break addr;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "operator exited with {status}: {:#?}",
                lines.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no admin address logged: {:#?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Operator {
        child,
        admin,
        lines,
    }
}

impl Operator {
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn has_log(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path).await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin server reachable");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Polls `cond` every 50 ms until it holds, or panics after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`wait_for`] with an async condition.
pub async fn wait_for_async<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small valid spec watching ConfigMaps in the policy's namespace.
pub fn configmap_spec() -> Value {
    json!({
        "targets": [{"apiVersion": "v1", "kind": "ConfigMap"}],
        "timeouts": {"request": "5s", "idle": "30s", "watch": "60s"},
        "backoff": {"initial": "100ms", "max": "1s"}
    })
}
