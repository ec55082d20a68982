//! The real kubectl 1.35 against the emulator: discovery, OpenAPI, apply, get with printer
//! columns, explain, describe, status patches, wait, label, delete with finalizers, watch and
//! server-side apply. Each test checks kubectl's output and exit code and the emulator's state
//! or request log.
//!
//! kubectl is looked up in `$WATCHPOOL_TOOLS_DIR/bin` or `<workspace>/.tools/bin`; a missing
//! binary fails the test with the command that installs it.

// Tests state their expectations with unwrap/expect: a failure is the test's result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest a single kubectl command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (the parent of `e2e/`).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .map(PathBuf::from)
        .expect("e2e/emulator has a grandparent")
}

/// The real kubectl, or a failure naming the install command.
fn kubectl_bin() -> PathBuf {
    let dir = match std::env::var_os("WATCHPOOL_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir).join("bin"),
        None => workspace_root().join(".tools").join("bin"),
    };
    let path = dir.join("kubectl");
    assert!(
        path.is_file(),
        "kubectl not found at {}: run `bash e2e/tools/install-tools.sh` first",
        path.display()
    );
    path
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "kubectl-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a kubectl run produced.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// An emulator with a kubeconfig and a fresh kubectl cache directory.
struct Env {
    emu: Emulator,
    dir: TempDir,
    kubeconfig: PathBuf,
    cache: PathBuf,
    kubectl: PathBuf,
}

impl Env {
    async fn start() -> Env {
        let kubectl = kubectl_bin();
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let dir = TempDir::new();
        let kubeconfig = dir.0.join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig).unwrap();
        let cache = dir.0.join("cache");
        Env {
            emu,
            dir,
            kubeconfig,
            cache,
            kubectl,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.args(args)
            .arg(format!("--cache-dir={}", self.cache.display()))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir.0)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl to completion.
    async fn run(&self, args: &[&str]) -> Out {
        let child = self.command(args).spawn().unwrap();
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {COMMAND_TIMEOUT:?}"))
            .unwrap();
        Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts it succeeded; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.success(), "kubectl {args:?} failed: {out:?}");
        out.stdout
    }

    /// Writes `content` to a file in the temp dir and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// Applies the WatchPolicy CRD and waits until it is Established.
    async fn install_crd(&self) {
        let crd = crd_path();
        let out = self.ok(&["apply", "-f", &crd]).await;
        assert!(
            out.contains(
                "customresourcedefinition.apiextensions.k8s.io/watchpolicies.watchpool.dev created"
            ),
            "{out}"
        );
        let out = self
            .ok(&[
                "wait",
                "--for=condition=Established",
                "crd/watchpolicies.watchpool.dev",
                "--timeout=20s",
            ])
            .await;
        assert!(out.contains("condition met"), "{out}");
    }

    /// Applies a WatchPolicy named `name` in `default` (with optional finalizers).
    async fn apply_policy(&self, name: &str, finalizers: &[&str]) {
        let mut policy = json!({
            "apiVersion": "watchpool.dev/v1alpha1",
            "kind": "WatchPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap"}]}
        });
        if !finalizers.is_empty() {
            policy["metadata"]["finalizers"] = json!(finalizers);
        }
        let path = self.file(&format!("{name}.json"), &policy.to_string());
        let out = self.ok(&["apply", "-f", &path]).await;
        assert!(
            out.contains(&format!("watchpolicy.watchpool.dev/{name} created")),
            "{out}"
        );
    }

    /// The stored object, read through the emulator's own API (not through kubectl).
    fn stored(&self, namespace: &str, name: &str) -> Option<Value> {
        self.emu
            .get("watchpool.dev/v1alpha1", "watchpolicies", namespace, name)
            .ok()
    }

    /// Requests whose path ends with `suffix` and whose method is `method`.
    fn requests_to(&self, method: &str, suffix: &str) -> Vec<kube_emulator::RequestRecord> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }
}

/// The project's CRD manifest.
fn crd_path() -> String {
    let real = workspace_root().join("crds/watchpool.dev_watchpolicies.yaml");
    assert!(real.is_file(), "missing {}", real.display());
    real.display().to_string()
}

/// Reads lines from a child's stdout until `pred` holds for the collected lines or the
/// deadline passes; returns the lines read so far.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<String>,
    deadline: Instant,
    pred: impl Fn(&[String]) -> bool,
) -> bool {
    while !pred(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, lines.next_line()).await {
            Ok(Ok(Some(line))) => seen.push(line),
            _ => return false,
        }
    }
    true
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kill(mut child: Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_lists_builtins_and_the_crd_with_its_short_name() {
    let env = Env::start().await;
    let before = env.ok(&["api-resources"]).await;
    for line in [
        "configmaps",
        "namespaces",
        "leases",
        "customresourcedefinitions",
    ] {
        assert!(before.contains(line), "{line} missing from:\n{before}");
    }
    assert!(!before.contains("watchpolicies"), "{before}");

    env.install_crd().await;
    let after = env
        .ok(&["api-resources", "--api-group=watchpool.dev"])
        .await;
    let row = after
        .lines()
        .find(|l| l.starts_with("watchpolicies"))
        .unwrap_or_else(|| panic!("no watchpolicies row in:\n{after}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "watchpolicies",
            "wp",
            "watchpool.dev/v1alpha1",
            "true",
            "WatchPolicy"
        ],
        "{after}"
    );
    // kubectl used aggregated discovery: /apis was asked for, never /apis/<g>/<v>.
    assert!(!env.requests_to("GET", "/apis").is_empty());
    assert!(
        env.requests_to("GET", "/apis/watchpool.dev/v1alpha1")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_crd_and_wait_for_established() {
    let env = Env::start().await;
    env.install_crd().await;
    // kubectl validated through OpenAPI v3 and created the CRD with server-side validation.
    let posts = env.requests_to(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    );
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].status, 201);
    assert!(
        posts[0].query.contains("fieldValidation=Strict"),
        "{}",
        posts[0].query
    );
    assert!(env.emu.requests().iter().any(|r| {
        r.path
            .starts_with("/openapi/v3/apis/apiextensions.k8s.io/v1")
            && r.status == 200
    }));
    let crd = env
        .emu
        .get(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "",
            "watchpolicies.watchpool.dev",
        )
        .expect("the CRD is stored");
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd}");

    // Re-applying the same manifest changes nothing.
    let again = env.ok(&["apply", "-f", &crd_path()]).await;
    assert!(again.contains("unchanged"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_examples_then_get_shows_printer_columns() {
    let env = Env::start().await;
    env.install_crd().await;
    let examples = workspace_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap_or_else(|e| panic!("{}: {e}", examples.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", examples.display());
    // Policies in other namespaces need them first.
    let mut namespaces = std::collections::BTreeSet::new();
    let mut names = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in text.split("\n---") {
            let v: Value = match serde_saphyr::from_str(doc) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v["kind"] == "WatchPolicy" {
                let ns = v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                names.push((
                    ns.clone(),
                    v["metadata"]["name"].as_str().unwrap().to_string(),
                ));
                namespaces.insert(ns);
            }
        }
    }
    for ns in &namespaces {
        let manifest = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let path = env.file(&format!("ns-{ns}.json"), &manifest.to_string());
        env.ok(&["apply", "-f", &path]).await;
    }
    for f in &files {
        let out = env.ok(&["apply", "-f", &f.display().to_string()]).await;
        assert!(out.contains("created"), "{}: {out}", f.display());
    }
    for (ns, name) in &names {
        assert!(env.stored(ns, name).is_some(), "{ns}/{name} not stored");
    }

    let (ns, name) = &names[0];
    // Give the first policy a status, then its row shows it.
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "AllWatching", "message": "all watching",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
        "watching": 2, "targetCount": 3, "objects": 42, "reconnects": 5,
        "cpu": {"used": "4m", "limit": "100m", "throttled": false}
    }});
    env.ok(&[
        "patch",
        "wp",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])
    .await;

    let out = env.ok(&["get", "wp", "-A"]).await;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "WATCHING",
            "TARGETS",
            "OBJECTS",
            "RECONNECTS",
            "CPU",
            "AGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines
        .find(|l| l.split_whitespace().nth(1) == Some(name.as_str()))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..8],
        [
            ns.as_str(),
            name.as_str(),
            "True",
            "2",
            "3",
            "42",
            "5",
            "4m"
        ],
        "{out}"
    );
    assert!(
        row[8].ends_with('s') || row[8].ends_with('m'),
        "age {}",
        row[8]
    );
    assert_eq!(out.lines().count(), names.len() + 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_yaml_returns_the_stored_object() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;
    let out = env.ok(&["get", "wp", "wp1", "-o", "yaml"]).await;
    let shown: Value = serde_saphyr::from_str(&out).unwrap();
    let stored = env.stored("default", "wp1").unwrap();
    assert_eq!(shown["kind"], "WatchPolicy");
    assert_eq!(shown["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(
        shown["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );
    assert_eq!(shown["spec"]["targets"][0]["kind"], "ConfigMap");
    // kubectl's apply recorded the last applied configuration.
    assert!(
        shown["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_field_descriptions_from_the_crd_schema() {
    let env = Env::start().await;
    env.install_crd().await;
    // Right after the CRD appears only the full resource name resolves: kubectl expands short
    // names from its discovery cache before refreshing it (as against a real cluster).
    let full = env.ok(&["explain", "watchpolicies.spec.backoff"]).await;
    // Any command that refreshes discovery (here `get`) makes the short name known.
    env.ok(&["get", "wp"]).await;
    let out = env.ok(&["explain", "wp.spec.backoff"]).await;
    assert_eq!(out, full);
    let header: Vec<Vec<&str>> = out
        .lines()
        .take(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        header,
        [
            vec!["GROUP:", "watchpool.dev"],
            vec!["KIND:", "WatchPolicy"],
            vec!["VERSION:", "v1alpha1"]
        ],
        "{out}"
    );
    assert!(out.contains("FIELD: backoff <Object>"), "{out}");
    // The descriptions come from the CRD's schema.
    assert!(
        out.contains("Retry policy after a failed list or watch"),
        "{out}"
    );
    assert!(out.contains("Multiplier per consecutive failure"), "{out}");
    for field in [
        "factor",
        "initial",
        "jitter",
        "max",
        "maxRetries",
        "resetAfter",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(field)),
            "field {field} missing:\n{out}"
        );
    }
    let top = env.ok(&["explain", "wp"]).await;
    assert!(
        top.contains("metadata") && top.contains("spec") && top.contains("status"),
        "{top}"
    );
    // explain read the group-version document through its hashed URL.
    assert!(
        env.emu
            .requests()
            .iter()
            .any(|r| r.path == "/openapi/v3/apis/watchpool.dev/v1alpha1"
                && r.query.contains("hash="))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_spec_and_status() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;
    env.ok(&[
        "patch",
        "wp",
        "wp1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"objects":7,"reconnects":1}}"#,
    ])
    .await;
    // An event about the policy, written the way kube-runtime's Recorder writes them.
    let wp = env.stored("default", "wp1").unwrap();
    env.emu
        .create(json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "wp1.reconciled", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "watchpool.dev/operator",
            "reportingInstance": "operator-0",
            "action": "Reconcile",
            "reason": "PoolStarted",
            "note": "started 1 watch",
            "type": "Normal",
            "regarding": {
                "apiVersion": "watchpool.dev/v1alpha1",
                "kind": "WatchPolicy",
                "name": "wp1",
                "namespace": "default",
                "uid": wp["metadata"]["uid"]
            }
        }))
        .unwrap();
    let out = env.ok(&["describe", "wp", "wp1"]).await;
    for want in [
        "Name:",
        "wp1",
        "Namespace:",
        "default",
        "API Version:",
        "watchpool.dev/v1alpha1",
        "Kind:",
        "WatchPolicy",
        "Spec:",
        "Targets:",
        "ConfigMap",
        "Status:",
        "Objects:",
        "7",
        "Events:",
        "PoolStarted",
        "started 1 watch",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    // describe asked for the object's events.
    assert!(env.emu.requests().iter().any(
        |r| r.path == "/api/v1/namespaces/default/events" && r.query.contains("involvedObject")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_patch_makes_a_waiting_kubectl_see_ready() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;

    // A wait started before the condition holds must return once the status changes.
    let waiter = env
        .command(&["wait", "--for=condition=Ready", "wp/wp1", "--timeout=20s"])
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.emu
                .requests()
                .iter()
                .any(|r| r.watch && r.resource == "watchpolicies")
        })
        .await,
        "kubectl wait never watched"
    );
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AllWatching",
        "message": "all watching", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let out = env
        .ok(&[
            "patch",
            "wp",
            "wp1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await;
    assert!(
        out.contains("watchpolicy.watchpool.dev/wp1 patched"),
        "{out}"
    );
    let done = tokio::time::timeout(COMMAND_TIMEOUT, waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("condition met"));

    let stored = env.stored("default", "wp1").unwrap();
    assert_eq!(stored["status"]["conditions"][0]["status"], "True");
    // The status subresource does not bump the generation.
    assert_eq!(stored["metadata"]["generation"], 1);
    let patches = env.requests_to("PATCH", "/watchpolicies/wp1/status");
    assert_eq!(patches.len(), 1);
    assert!(
        patches[0].query.contains("fieldManager=kubectl-patch"),
        "{}",
        patches[0].query
    );

    // Once true, a new wait returns at once.
    let out = env
        .ok(&["wait", "--for=condition=Ready", "wp/wp1", "--timeout=5s"])
        .await;
    assert!(out.contains("condition met"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_adds_a_label_that_selectors_find() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;
    env.apply_policy("wp2", &[]).await;
    let out = env.ok(&["label", "wp", "wp1", "team=platform"]).await;
    assert!(
        out.contains("watchpolicy.watchpool.dev/wp1 labeled"),
        "{out}"
    );
    let stored = env.stored("default", "wp1").unwrap();
    assert_eq!(stored["metadata"]["labels"]["team"], "platform");
    let listed = env
        .ok(&["get", "wp", "-l", "team=platform", "-o", "name"])
        .await;
    assert_eq!(listed.trim(), "watchpolicy.watchpool.dev/wp1");
    let other = env
        .ok(&["get", "wp", "-l", "team!=platform", "-o", "name"])
        .await;
    assert_eq!(other.trim(), "watchpolicy.watchpool.dev/wp2");
    let label_patch = env.requests_to("PATCH", "/watchpolicies/wp1");
    assert!(
        label_patch
            .iter()
            .any(|r| r.query.contains("fieldManager=kubectl-label"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_the_finalizer_to_go() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("held", &["watchpool.dev/cleanup"]).await;

    // `kubectl delete` (waiting by default) does not return while the finalizer holds.
    let mut deleter = env
        .command(&["delete", "wp", "held", "--timeout=25s"])
        .spawn()
        .unwrap();
    // So does `kubectl wait --for=delete`.
    let mut waiter = env
        .command(&["wait", "--for=delete", "wp/held", "--timeout=25s"])
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.stored("default", "held")
                .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
        })
        .await,
        "no deletionTimestamp"
    );
    let shown = env
        .ok(&[
            "get",
            "wp",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(
        !shown.is_empty(),
        "kubectl does not show the deletionTimestamp"
    );
    assert!(
        deleter.try_wait().unwrap().is_none(),
        "delete returned while the finalizer held"
    );
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait --for=delete returned while the finalizer held"
    );

    // `--wait=false` returns at once on an object already being deleted.
    let out = env.ok(&["delete", "wp", "held", "--wait=false"]).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(env.stored("default", "held").is_some());

    // Removing the finalizer lets the deletion finish and the waiting delete return.
    env.ok(&[
        "patch",
        "wp",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let done = tokio::time::timeout(COMMAND_TIMEOUT, deleter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(done.status.success(), "delete exited {done:?}");
    assert!(
        String::from_utf8_lossy(&done.stdout)
            .contains("watchpolicy.watchpool.dev \"held\" deleted"),
        "{done:?}"
    );
    let waited = tokio::time::timeout(COMMAND_TIMEOUT, waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(waited.status.success(), "wait exited {waited:?}");
    assert!(
        String::from_utf8_lossy(&waited.stdout).contains("condition met"),
        "{waited:?}"
    );
    assert!(env.stored("default", "held").is_none());
    let gone = env.run(&["get", "wp", "held"]).await;
    assert!(!gone.success());
    assert!(
        gone.stderr.contains("NotFound") || gone.stderr.contains("not found"),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_rows_as_objects_change() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("first", &[]).await;

    let mut child = env.command(&["get", "wp", "-w"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = read_until(&mut lines, &mut seen, deadline, |s| {
        s.iter()
            .any(|l| l.starts_with("NAME") && l.contains("READY") && l.contains("OBJECTS"))
            && s.iter().any(|l| l.starts_with("first "))
    })
    .await;
    assert!(listed, "initial table not shown: {seen:?}");

    env.apply_policy("second", &[]).await;
    let added = read_until(&mut lines, &mut seen, deadline, |s| {
        s.iter().any(|l| l.starts_with("second "))
    })
    .await;
    assert!(added, "added object not shown: {seen:?}");

    env.ok(&[
        "patch",
        "wp",
        "first",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"objects":99}}"#,
    ])
    .await;
    let modified = read_until(&mut lines, &mut seen, deadline, |s| {
        s.iter()
            .any(|l| l.starts_with("first ") && l.split_whitespace().any(|c| c == "99"))
    })
    .await;
    assert!(modified, "modified object not shown: {seen:?}");
    kill(child).await;

    // The watch asked for tables and stayed a single stream.
    let watches: Vec<_> = env
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.watch && r.resource == "watchpolicies")
        .collect();
    assert!(!watches.is_empty());
    assert!(watches.iter().all(|r| r.status == 200), "{watches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_then_updates_with_the_kubectl_manager() {
    let env = Env::start().await;
    env.install_crd().await;
    let manifest = |kind: &str| {
        json!({
            "apiVersion": "watchpool.dev/v1alpha1",
            "kind": "WatchPolicy",
            "metadata": {"name": "ssa", "namespace": "default"},
            "spec": {"targets": [{"apiVersion": "v1", "kind": kind}]}
        })
        .to_string()
    };
    let path = env.file("ssa.json", &manifest("ConfigMap"));
    let out = env.ok(&["apply", "--server-side", "-f", &path]).await;
    assert!(
        out.contains("watchpolicy.watchpool.dev/ssa serverside-applied"),
        "{out}"
    );
    let created = env.stored("default", "ssa").unwrap();
    assert_eq!(created["spec"]["targets"][0]["kind"], "ConfigMap");
    let managers: Vec<String> = created["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["manager"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(managers.iter().any(|m| m == "kubectl"), "{created}");

    let path = env.file("ssa.json", &manifest("Secret"));
    let out = env.ok(&["apply", "--server-side", "-f", &path]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let updated = env.stored("default", "ssa").unwrap();
    assert_eq!(updated["spec"]["targets"][0]["kind"], "Secret");
    assert_eq!(updated["metadata"]["generation"], 2);

    let applies = env.requests_to("PATCH", "/watchpolicies/ssa");
    assert_eq!(applies.len(), 2, "{applies:?}");
    assert!(
        applies
            .iter()
            .all(|r| r.query.contains("fieldManager=kubectl") && r.query.contains("force=false"))
    );
    assert_eq!(applies[0].status, 201);
    assert_eq!(applies[1].status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_builtins_uses_their_server_side_printers() {
    let env = Env::start().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"},
        "data": {"a": "1", "b": "2"}});
    let path = env.file("cm.json", &cm.to_string());
    let out = env.ok(&["apply", "-f", &path]).await;
    assert!(out.contains("configmap/settings created"), "{out}");
    assert!(
        env.emu
            .get("v1", "configmaps", "default", "settings")
            .is_ok()
    );

    let out = env.ok(&["get", "configmaps", "settings"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "DATA", "AGE"], "{out}");
    assert_eq!(&rows[1][..2], ["settings", "2"], "{out}");

    // Client-side apply of a changed built-in: kubectl computes a strategic merge patch.
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"},
        "data": {"a": "1", "c": "3"}});
    let path = env.file("cm.json", &changed.to_string());
    let out = env.ok(&["apply", "-f", &path]).await;
    assert!(out.contains("configmap/settings configured"), "{out}");
    let stored = env
        .emu
        .get("v1", "configmaps", "default", "settings")
        .unwrap();
    assert_eq!(stored["data"], json!({"a": "1", "c": "3"}));
    let patches = env.requests_to("PATCH", "/configmaps/settings");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].status, 200);

    // explain knows the main fields of a few built-ins.
    let out = env.ok(&["explain", "configmaps.data"]).await;
    assert!(out.contains("FIELD: data <map[string]string>"), "{out}");
    assert!(
        out.contains("Data contains the configuration data"),
        "{out}"
    );

    let out = env.ok(&["get", "namespaces"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"], "{out}");
    assert!(
        rows.iter().any(|r| r[..2] == ["default", "Active"]),
        "{out}"
    );
}

#[test]
fn every_fault_example_in_the_docs_is_a_valid_fault() {
    let docs = std::fs::read_to_string(workspace_root().join("docs/emulator.md")).unwrap();
    let mut shown = std::collections::BTreeSet::new();
    for example in docs.split('`').filter(|s| s.starts_with("{\"type\":")) {
        let spec: kube_emulator::FaultSpec =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        let value: Value = serde_json::from_str(example).unwrap();
        assert_eq!(value["type"], spec.fault.name(), "{example}");
        shown.insert(spec.fault.name());
    }
    // The curl example in single quotes.
    for example in docs.split('\'').filter(|s| s.starts_with("{\"type\":")) {
        let _: kube_emulator::FaultSpec =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    // Every knob of the specification has an example (a knob added later gets its example
    // with its documentation; this list does not fail on additions).
    let documented = [
        "drop_watches",
        "reset_watches",
        "close_watches",
        "stall_watches",
        "watch_error",
        "compact",
        "future_rv_policy",
        "restart",
        "http_error",
        "latency",
        "conflict_next",
        "watchlist",
        "bookmark_interval",
        "slow_watch_buffer",
        "crd_establish_delay",
        "crd_names_conflict",
        "auto_ready",
        "auth",
        "malformed_line",
        "oversized_line",
        "drip",
        "empty_watch",
    ];
    let missing: Vec<&str> = documented
        .iter()
        .copied()
        .filter(|t| !shown.contains(t))
        .collect();
    assert!(missing.is_empty(), "no example for {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_uses_a_server_side_dry_run_and_changes_nothing() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;
    let rv_before = env.stored("default", "wp1").unwrap()["metadata"]["resourceVersion"].clone();

    let same = json!({
        "apiVersion": "watchpool.dev/v1alpha1",
        "kind": "WatchPolicy",
        "metadata": {"name": "wp1", "namespace": "default"},
        "spec": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap"}]}
    });
    let path = env.file("wp1.json", &same.to_string());
    let out = env.run(&["diff", "-f", &path]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    let mut changed = same.clone();
    changed["spec"]["targets"][0]["kind"] = json!("Secret");
    let path = env.file("wp1.json", &changed.to_string());
    let out = env.run(&["diff", "-f", &path]).await;
    // 1: differences found.
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.contains("-  - apiVersion: v1") || out.stdout.contains("-    kind: ConfigMap"),
        "{out:?}"
    );
    assert!(out.stdout.contains("+    kind: Secret"), "{out:?}");

    // The dry run persisted nothing.
    let stored = env.stored("default", "wp1").unwrap();
    assert_eq!(stored["spec"]["targets"][0]["kind"], "ConfigMap");
    assert_eq!(stored["metadata"]["resourceVersion"], rv_before);
    assert!(
        env.emu
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.query.contains("dryRun=All")),
        "diff sent no dry-run patch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_crd_removes_its_objects_and_its_resource() {
    let env = Env::start().await;
    env.install_crd().await;
    env.apply_policy("wp1", &[]).await;
    let out = env
        .ok(&["delete", "-f", &crd_path(), "--timeout=20s"])
        .await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io \"watchpolicies.watchpool.dev\" deleted"
        ),
        "{out}"
    );
    assert!(env.stored("default", "wp1").is_none());
    assert!(
        !env.emu
            .resources()
            .iter()
            .any(|r| r.group == "watchpool.dev"),
        "the resource is still served"
    );
    // kubectl still knows the kind from its discovery cache, so the list itself answers 404
    // (as a real API server does once the CRD is gone).
    let gone = env.run(&["get", "watchpolicies"]).await;
    assert!(!gone.success(), "{gone:?}");
    assert!(
        gone.stderr
            .contains("the server could not find the requested resource")
            || gone
                .stderr
                .contains("the server doesn't have a resource type"),
        "{gone:?}"
    );
    let resources = env.ok(&["api-resources"]).await;
    assert!(!resources.contains("watchpolicies"), "{resources}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_follows_a_changed_crd_schema() {
    let env = Env::start().await;
    env.install_crd().await;
    let before = env.ok(&["explain", "watchpolicies.spec.backoff"]).await;
    assert!(
        before.contains("Retry policy after a failed list or watch"),
        "{before}"
    );
    let root_before = kube_emulator::openapi::root(&env.emu.resources());

    // The same CRD with another description: the group-version document changes, so does its
    // hashed URL, and kubectl (which caches hashed documents as immutable) fetches it anew.
    let yaml = std::fs::read_to_string(crd_path()).unwrap().replace(
        "Retry policy after a failed list or watch",
        "Changed policy for retrying after a failed list or watch",
    );
    let path = env.file("crd-changed.yaml", &yaml);
    let out = env.ok(&["apply", "-f", &path]).await;
    assert!(out.contains("configured"), "{out}");
    let root_after = kube_emulator::openapi::root(&env.emu.resources());
    let key = "apis/watchpool.dev/v1alpha1";
    assert_ne!(
        root_before["paths"][key]["serverRelativeURL"],
        root_after["paths"][key]["serverRelativeURL"]
    );
    assert_eq!(
        root_before["paths"]["api/v1"]["serverRelativeURL"],
        root_after["paths"]["api/v1"]["serverRelativeURL"]
    );

    let after = env.ok(&["explain", "watchpolicies.spec.backoff"]).await;
    assert!(
        after.contains("Changed policy for retrying after a failed list or watch"),
        "{after}"
    );
    let fetched: Vec<String> = env
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path == "/openapi/v3/apis/watchpool.dev/v1alpha1")
        .map(|r| r.query)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = fetched.iter().collect();
    assert!(distinct.len() >= 2, "one hashed URL only: {fetched:?}");
}

/// A small CRD whose printer columns use every cell type, an index, a filter and a wide-only
/// column.
const GADGET_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "gadgets.test.watchpool.dev"},
  "spec": {
    "group": "test.watchpool.dev",
    "scope": "Cluster",
    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
      "additionalPrinterColumns": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "First", "type": "string", "jsonPath": ".spec.items[0].name"},
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 1},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "On", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Healthy", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Healthy\")].status"},
        {"name": "Seen", "type": "date", "jsonPath": ".status.lastSeen"}
      ]
    }]
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_columns_of_every_type_and_wide_only_columns() {
    let env = Env::start().await;
    let path = env.file("gadget-crd.json", GADGET_CRD);
    env.ok(&["apply", "-f", &path]).await;
    env.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.test.watchpool.dev",
        "--timeout=20s",
    ])
    .await;
    let gadget = json!({"apiVersion": "test.watchpool.dev/v1", "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"items": [{"name": "alpha"}, {"name": "beta"}], "size": 7, "ratio": 0.5, "enabled": true}});
    let path = env.file("g1.json", &gadget.to_string());
    env.ok(&["apply", "-f", &path]).await;
    // Seen three hours ago: the emulator renders it as kubectl would (`3h`).
    let seen = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3 * 3600 + 30);
    let status = json!({"status": {"phase": "Running", "lastSeen": seen.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "Healthy", "status": "True"}]}});
    env.ok(&[
        "patch",
        "gadget",
        "g1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])
    .await;
    let stored = env
        .emu
        .get("test.watchpool.dev/v1", "gadgets", "", "g1")
        .unwrap();
    assert_eq!(stored["status"]["phase"], "Running");

    let rows = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    let out = env.ok(&["get", "gd"]).await;
    let t = rows(&out);
    assert_eq!(
        t[0],
        ["NAME", "PHASE", "FIRST", "RATIO", "ON", "HEALTHY", "SEEN"],
        "{out}"
    );
    assert_eq!(
        t[1],
        ["g1", "Running", "alpha", "0.5", "true", "True", "3h"],
        "{out}"
    );

    let out = env.ok(&["get", "gd", "-o", "wide"]).await;
    let t = rows(&out);
    assert_eq!(
        t[0],
        [
            "NAME", "PHASE", "FIRST", "SIZE", "RATIO", "ON", "HEALTHY", "SEEN"
        ],
        "{out}"
    );
    assert_eq!(
        t[1],
        ["g1", "Running", "alpha", "7", "0.5", "true", "True", "3h"],
        "{out}"
    );

    // Missing values are null cells, which kubectl prints blank.
    let bare = json!({"apiVersion": "test.watchpool.dev/v1", "kind": "Gadget", "metadata": {"name": "g2"}});
    let path = env.file("g2.json", &bare.to_string());
    env.ok(&["apply", "-f", &path]).await;
    let out = env.ok(&["get", "gadget", "g2"]).await;
    let t = rows(&out);
    assert_eq!(t[1], ["g2"], "{out}");
}
