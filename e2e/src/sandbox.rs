//! The sandbox: the operator at work on an embedded API server, in one command.
//!
//! It starts an emulator, installs the WatchPolicy CRD, starts the real operator binary,
//! applies the example policies (moved into the sandbox's namespace, with timeouts shortened
//! so that a minute shows every fault's recovery), runs a workload that creates, changes and
//! deletes objects, and cuts connections the way a cloud load balancer does: a reset of every
//! watch each `fault_interval`, one silent half-open stall, and one 410 after a compaction.
//! A table of the policies is printed every `refresh`; at the end a summary says what was
//! injected, how the operator coped, and whether every cache matched the server.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use watchpool_api::{TargetState, WatchPolicy};

use crate::env::{EnvError, client_for, fresh_list};
use crate::operator::{Operator, OperatorOptions};
use crate::pools;
use crate::tempdir::TempDir;

/// The namespace the sandbox's policies and objects live in (trusted by the operator).
pub const NAMESPACE: &str = "sandbox";

/// The kinds the workload writes, with the labels the example selectors look for.
const WORKLOAD_KINDS: [(&str, &str); 4] = [
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "Secret"),
];

/// How the sandbox runs.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// How long the workload and the faults run.
    pub duration: Duration,
    /// Number of policies (the examples, repeated or cut to this number); 0: each example once.
    pub policies: usize,
    /// Objects the workload keeps alive.
    pub objects: usize,
    /// Time between two resets of every watch.
    pub fault_interval: Duration,
    /// Time between two tables.
    pub refresh: Duration,
    /// Print the kubeconfig's path and contents at start.
    pub print_kubeconfig: bool,
    /// The folder of example policies.
    pub examples: PathBuf,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            policies: 0,
            objects: 200,
            fault_interval: Duration::from_secs(30),
            refresh: Duration::from_secs(2),
            print_kubeconfig: false,
            examples: crate::tools::workspace_root().join("examples"),
        }
    }
}

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Setting up (emulator, files, operator) failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The operator failed.
    #[error(transparent)]
    Operator(#[from] crate::operator::OperatorError),
    /// An example policy could not be read.
    #[error("cannot read the example {path}: {message}")]
    Example { path: PathBuf, message: String },
    /// The emulator refused an object the sandbox wrote.
    #[error("the emulator refused {what}: {message}")]
    Write { what: String, message: String },
}

/// What the sandbox saw, printed at the end.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Reconnects across all policies (from their status).
    pub reconnects: i64,
    /// Relists across all watches (from their status).
    pub relists: i64,
    /// The longest recovery: from a fault to every policy Ready and every cache matching;
    /// `None` when the last fault never recovered.
    pub recover: Option<Duration>,
    /// Each recovery, in order (faults close together share one).
    pub recoveries: Vec<Duration>,
    /// CPU time the operator used.
    pub cpu: Duration,
    /// Its average over the run, percent of one core.
    pub cpu_pct: f64,
    /// Objects created, changed and deleted by the workload.
    pub writes: u64,
    /// Watches whose cache matched a fresh list at the end.
    pub matched: usize,
    /// Watches compared.
    pub watches: usize,
    /// The watches that did not match, with what was seen.
    pub mismatches: Vec<String>,
}

impl Summary {
    /// True when every cache matched the server.
    pub fn all_matched(&self) -> bool {
        self.watches > 0 && self.matched == self.watches
    }

    /// The summary as printed.
    pub fn render(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut out = String::new();
        out.push_str("==== watchpool sandbox summary ====\n");
        out.push_str(&format!("faults injected:     {}\n", faults.join(" ")));
        out.push_str(&format!("workload writes:     {}\n", self.writes));
        out.push_str(&format!("reconnects:          {}\n", self.reconnects));
        out.push_str(&format!("relists:             {}\n", self.relists));
        out.push_str(&format!(
            "time to recover:     {}\n",
            self.recover
                .map(|d| format!(
                    "at most {:.1}s after a fault ({} recoveries: {})",
                    d.as_secs_f64(),
                    self.recoveries.len(),
                    self.recoveries
                        .iter()
                        .map(|r| format!("{:.1}s", r.as_secs_f64()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_else(|| "not recovered from the last fault".into())
        ));
        out.push_str(&format!(
            "operator CPU:        {:.2}s ({:.2} % of one core on average)\n",
            self.cpu.as_secs_f64(),
            self.cpu_pct
        ));
        out.push_str(&format!(
            "caches vs server:    {}/{} watches matched\n",
            self.matched, self.watches
        ));
        for m in &self.mismatches {
            out.push_str(&format!("  mismatch: {m}\n"));
        }
        out.push_str(&format!(
            "every cache matched the server: {}\n",
            if self.all_matched() { "yes" } else { "no" }
        ));
        out.push_str(&format!("{}\n", self.line()));
        out
    }

    /// The summary as one `key=value` line for scripts:
    /// `summary: faults=4 writes=240 reconnects=27 relists=8 recover_ms=7000 cpu_ms=370
    /// cpu_pct=2.5 caches=9/9 matched=yes`.
    pub fn line(&self) -> String {
        format!(
            "summary: faults={} writes={} reconnects={} relists={} recover_ms={} cpu_ms={} cpu_pct={:.1} caches={}/{} matched={}",
            self.faults.values().sum::<u64>(),
            self.writes,
            self.reconnects,
            self.relists,
            self.recover
                .map(|d| d.as_millis().to_string())
                .unwrap_or_else(|| "none".into()),
            self.cpu.as_millis(),
            self.cpu_pct,
            self.matched,
            self.watches,
            if self.all_matched() { "yes" } else { "no" }
        )
    }
}

/// Reads the example policies and adapts them to the sandbox: all in [`NAMESPACE`], targets
/// on the policy's own namespace (cluster-wide ones stay cluster-wide), targets whose kind
/// `served` says the emulator lacks dropped, and timeouts shortened so that a minute shows a
/// stall being detected and every fault recovered.
pub fn sandbox_policies(
    examples: &Path,
    count: usize,
    served: impl Fn(&str, &str) -> bool,
) -> Result<(Vec<Value>, Vec<String>), SandboxError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(examples)
        .map_err(|e| SandboxError::Example {
            path: examples.to_owned(),
            message: e.to_string(),
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    let mut notes = Vec::new();
    let mut base = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| SandboxError::Example {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut policy: Value =
            serde_saphyr::from_str(&text).map_err(|e| SandboxError::Example {
                path: path.clone(),
                message: e.to_string(),
            })?;
        policy["metadata"] = json!({"name": policy["metadata"]["name"], "namespace": NAMESPACE});
        let spec = &mut policy["spec"];
        let mut kept = Vec::new();
        for mut target in spec["targets"].as_array().cloned().unwrap_or_default() {
            let api_version = target["apiVersion"].as_str().unwrap_or("").to_owned();
            let kind = target["kind"].as_str().unwrap_or("").to_owned();
            if !served(&api_version, &kind) {
                notes.push(format!(
                    "{}: target {api_version} {kind} dropped (the emulator does not serve it)",
                    path.display()
                ));
                continue;
            }
            let cluster_wide = target["namespaces"] == json!(["*"]);
            if !cluster_wide && let Some(obj) = target.as_object_mut() {
                obj.remove("namespaces");
            }
            kept.push(target);
        }
        if kept.is_empty() {
            notes.push(format!(
                "{}: skipped (no target the emulator serves)",
                path.display()
            ));
            continue;
        }
        spec["targets"] = Value::Array(kept);
        spec["timeouts"]["idle"] = json!("5s");
        spec["timeouts"]["request"] = json!("5s");
        spec["backoff"]["initial"] = json!("300ms");
        spec["backoff"]["max"] = json!("4s");
        if spec["timeouts"]["resync"]
            .as_str()
            .is_some_and(|r| r != "0s")
        {
            spec["timeouts"]["resync"] = json!("0s");
        }
        base.push(policy);
    }
    let count = if count == 0 { base.len() } else { count };
    let mut out = Vec::new();
    for i in 0..count {
        let Some(template) = base.get(i % base.len().max(1)) else {
            break;
        };
        let mut policy = template.clone();
        if i >= base.len() {
            let name = policy["metadata"]["name"]
                .as_str()
                .unwrap_or("policy")
                .to_owned();
            policy["metadata"]["name"] = json!(format!("{name}-{}", i / base.len() + 1));
        }
        out.push(policy);
    }
    notes.push(
        "policies moved to namespace `sandbox`; timeouts.idle=5s, backoff {initial: 300ms, max: 4s} so a minute shows every recovery"
            .into(),
    );
    Ok((out, notes))
}

fn write_err(what: &str) -> impl FnOnce(kube_emulator::ApiError) -> SandboxError + '_ {
    move |e| SandboxError::Write {
        what: what.to_owned(),
        message: e.message,
    }
}

/// The workload: objects of [`WORKLOAD_KINDS`] created, changed and deleted in-process (so that
/// writes go on while connections are cut).
struct Workload {
    next: u64,
    created: u64,
    live: Vec<(usize, String)>,
    writes: u64,
}

impl Workload {
    fn object(kind_index: usize, name: &str, seq: u64) -> Value {
        let (api_version, kind) = WORKLOAD_KINDS[kind_index];
        let tier = if seq.is_multiple_of(2) { "web" } else { "api" };
        let mut obj = json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"tier": tier, "app": "sandbox",
                                    "app.kubernetes.io/part-of": "shop"},
                         "annotations": {"sandbox/seq": seq.to_string()}},
        });
        match kind {
            "Pod" => {
                obj["spec"] = json!({"containers": [{"name": "app", "image": "example/app:1"}]})
            }
            "ConfigMap" => obj["data"] = json!({"seq": seq.to_string()}),
            "Service" => {
                obj["spec"] = json!({"ports": [{"port": 80}], "selector": {"app": "sandbox"}})
            }
            "Secret" => obj["stringData"] = json!({"token": "not-a-real-secret"}),
            _ => {}
        }
        obj
    }

    fn create(&mut self, emu: &kube_emulator::Emulator) -> Result<(), SandboxError> {
        let kind_index = (self.created % WORKLOAD_KINDS.len() as u64) as usize;
        self.created += 1;
        let name = format!("obj-{}", self.next);
        emu.create(Self::object(kind_index, &name, self.next))
            .map_err(write_err("a workload object"))?;
        self.live.push((kind_index, name));
        self.next += 1;
        self.writes += 1;
        Ok(())
    }

    fn change(&mut self, emu: &kube_emulator::Emulator) -> Result<(), SandboxError> {
        if self.live.is_empty() {
            return Ok(());
        }
        let pick = (self.next as usize * 7919) % self.live.len();
        let (kind_index, name) = self.live[pick].clone();
        let (api_version, kind) = WORKLOAD_KINDS[kind_index];
        let patch = json!({"metadata": {"annotations": {"sandbox/seq": self.next.to_string()}}});
        self.next += 1;
        emu.patch_merge(api_version, kind, NAMESPACE, &name, patch, false)
            .map_err(write_err("a workload change"))?;
        self.writes += 1;
        Ok(())
    }

    fn delete(&mut self, emu: &kube_emulator::Emulator) -> Result<(), SandboxError> {
        if self.live.is_empty() {
            return Ok(());
        }
        let (kind_index, name) = self.live.remove(0);
        let (api_version, kind) = WORKLOAD_KINDS[kind_index];
        emu.delete(api_version, kind, NAMESPACE, &name)
            .map_err(write_err("a workload delete"))?;
        self.writes += 1;
        Ok(())
    }
}

/// The policies as the emulator stores them now.
fn policies(emu: &kube_emulator::Emulator) -> Vec<WatchPolicy> {
    emu.list("watchpool.dev/v1alpha1", "WatchPolicy", Some(NAMESPACE))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// Reconnects and relists across all policies: what moves when the operator reacts to a fault.
fn disruptions(policies: &[WatchPolicy]) -> i64 {
    policies
        .iter()
        .filter_map(|p| p.status.as_ref())
        .map(|s| s.reconnects + s.targets.iter().map(|t| t.relists).sum::<i64>())
        .sum()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The live table of the policies.
pub fn render_table(policies: &[WatchPolicy], header: &str) -> String {
    let mut out = format!("{header}\n");
    out.push_str(&format!(
        "{:<22} {:<6} {:<9} {:>8} {:>10} {:>6}  {:<44} {}\n",
        "POLICY", "READY", "WATCHING", "OBJECTS", "RECONNECTS", "CPU", "TARGETS", "LAST ERROR"
    ));
    for p in policies {
        let status = p.status.clone().unwrap_or_default();
        let ready = crate::policy::condition(p, "Ready")
            .map(|c| c.status)
            .unwrap_or_else(|| "-".into());
        let targets: Vec<String> = status
            .targets
            .iter()
            .map(|t| format!("{}:{}", t.kind, t.state.as_str()))
            .collect();
        let last_error = status
            .targets
            .iter()
            .filter_map(|t| t.last_error.as_ref())
            .max_by_key(|e| e.time.0)
            .map(|e| format!("{}: {}", e.reason.as_str(), e.message))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<22} {:<6} {:<9} {:>8} {:>10} {:>6}  {:<44} {}\n",
            truncate(p.metadata.name.as_deref().unwrap_or("?"), 22),
            ready,
            format!("{}/{}", status.watching, status.target_count),
            status.objects,
            status.reconnects,
            status.cpu.map(|c| c.used).unwrap_or_default(),
            truncate(&targets.join(","), 44),
            truncate(&last_error, 60),
        ));
    }
    out
}

/// Compares every watch of `/debug/pools` with a fresh list of the server.
async fn compare_caches(
    client: &kube::Client,
    operator: &Operator,
    policies: &[WatchPolicy],
) -> (usize, usize, Vec<String>) {
    let doc = match operator.debug_pools().await.map(pools::parse) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return (0, 0, vec![format!("/debug/pools undecodable: {e}")]),
        Err(e) => return (0, 0, vec![format!("/debug/pools failed: {e}")]),
    };
    let (mut matched, mut total, mut mismatches) = (0, 0, Vec::new());
    for policy in &doc {
        let spec = policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(policy.name.as_str()))
            .map(|p| p.spec.clone());
        for w in &policy.watches {
            total += 1;
            let target = spec.as_ref().and_then(|s| {
                s.targets
                    .iter()
                    .find(|t| t.kind == w.kind && t.api_version == w.api_version)
                    .cloned()
            });
            let (labels, fields) = target
                .map(|t| (t.label_selector, t.field_selector))
                .unwrap_or_default();
            match fresh_list(
                client,
                &w.api_version,
                &w.kind,
                &w.namespace,
                labels.as_deref(),
                fields.as_deref(),
            )
            .await
            {
                Ok((count, digest)) if count == w.count && digest == w.digest => matched += 1,
                Ok((count, digest)) => mismatches.push(format!(
                    "{}/{} {} {:?}: cache {} objects {} ({}), server {} objects {}",
                    policy.namespace,
                    policy.name,
                    w.kind,
                    w.namespace,
                    w.count,
                    w.digest,
                    w.state,
                    count,
                    digest
                )),
                Err(e) => mismatches.push(format!(
                    "{}/{} {}: {e}",
                    policy.namespace, policy.name, w.kind
                )),
            }
        }
    }
    (matched, total, mismatches)
}

/// Runs the sandbox until `options.duration` has passed (then waits up to 30 s more for every
/// cache to match) or `stop` resolves (Ctrl-C). Prints as it goes; returns the summary.
pub async fn run(
    options: &SandboxOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary, SandboxError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| EnvError::Io { what, source }
    };
    let dir = TempDir::new("sandbox").map_err(io("create the sandbox dir"))?;
    let config = kube_emulator::EmulatorConfig {
        bookmark_interval: Duration::from_secs(2),
        ..kube_emulator::EmulatorConfig::default()
    };
    let emu = kube_emulator::Emulator::start(config)
        .await
        .map_err(|e| EnvError::Emulator(e.to_string()))?;
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig)
        .map_err(|e| EnvError::Emulator(e.to_string()))?;
    println!("emulator listening on {}", emu.url());
    if options.print_kubeconfig {
        println!("kubeconfig: {}", kubeconfig.display());
        println!("{}", emu.kubeconfig_yaml());
        println!(
            "look around while it runs: KUBECONFIG={} kubectl get wp -n {NAMESPACE}",
            kubeconfig.display()
        );
    }
    // CRD and namespace, in-process.
    let crd = serde_json::to_value(watchpool_api::crd()).map_err(|e| SandboxError::Write {
        what: "the CRD".into(),
        message: e.to_string(),
    })?;
    emu.create(crd).map_err(write_err("the WatchPolicy CRD"))?;
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .map_err(write_err("the sandbox namespace"))?;
    let resources = emu.resources();
    let served = |api_version: &str, kind: &str| {
        resources
            .iter()
            .any(|r| r.api_version() == api_version && r.kind == kind)
    };
    let (manifests, notes) = sandbox_policies(&options.examples, options.policies, served)?;
    for note in &notes {
        println!("note: {note}");
    }
    // The operator.
    println!(
        "starting the operator ({})",
        crate::operator::binary()?.display()
    );
    let operator = Operator::spawn(
        &kubeconfig,
        dir.path(),
        &OperatorOptions {
            trusted_namespaces: vec![NAMESPACE.into()],
            pod_namespace: Some(NAMESPACE.into()),
            pod_name: "watchpool-sandbox-operator".into(),
            status_interval: "2s".into(),
            log_level: "info".into(),
            ..OperatorOptions::default()
        },
    )?;
    operator.wait_ready(Duration::from_secs(30)).await?;
    println!(
        "operator ready (pid {}, log {})",
        operator.pid(),
        operator.log_path().display()
    );
    let client = client_for(&kubeconfig).await?;
    // Workload, then policies.
    let mut workload = Workload {
        next: 0,
        created: 0,
        live: Vec::new(),
        writes: 0,
    };
    for _ in 0..options.objects {
        workload.create(&emu)?;
    }
    for manifest in &manifests {
        emu.create(manifest.clone())
            .map_err(write_err("a policy"))?;
    }
    println!(
        "{} policies applied, {} objects created",
        manifests.len(),
        options.objects
    );

    let started = Instant::now();
    let cpu_start = operator.sample()?;
    let mut summary = Summary::default();
    // Resets at every multiple of the interval; the stall early, so that its detection (the
    // policies' idle timeout) ends before the first reset cuts the stalled connection anyway;
    // the compaction between two resets. Faults stop at 80 % of the run.
    let faults_until = options.duration.mul_f64(0.8);
    let stall_at = options
        .fault_interval
        .mul_f64(0.3)
        .min(options.duration.mul_f64(0.2));
    let compact_at = options
        .fault_interval
        .mul_f64(1.5)
        .min(options.duration.mul_f64(0.6));
    let (mut stalled, mut compacted) = (false, false);
    let mut next_reset = options.fault_interval;
    let mut next_table = Duration::ZERO;
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(stop);
    let mut interrupted = false;
    // The time of the oldest fault not yet recovered from, and the reconnects + relists then.
    let mut pending: Option<(Instant, i64)> = None;
    let mut next_check = Duration::ZERO;
    loop {
        tokio::select! {
            _ = &mut stop => { interrupted = true; break; }
            _ = tick.tick() => {}
        }
        let t = started.elapsed();
        let running = t < options.duration;
        if running {
            // Churn: one create, one change and one delete per tick (the population is steady).
            workload.create(&emu)?;
            workload.change(&emu)?;
            if workload.live.len() > options.objects {
                workload.delete(&emu)?;
            }
            let mut inject = |name: &str, spec: kube_emulator::FaultSpec| {
                emu.faults().add(spec);
                *summary.faults.entry(name.to_owned()).or_default() += 1;
                if pending.is_none() {
                    pending = Some((Instant::now(), disruptions(&policies(&emu))));
                }
                println!("t={:>5.1}s  fault: {name}", t.as_secs_f64());
            };
            if t < faults_until {
                if !stalled && t >= stall_at {
                    stalled = true;
                    inject(
                        "half-open-stall",
                        kube_emulator::FaultSpec::new(kube_emulator::Fault::StallWatches {
                            secs: None,
                        })
                        .resource("pods")
                        .count(1),
                    );
                }
                if !compacted && t >= compact_at {
                    compacted = true;
                    emu.faults().add(kube_emulator::FaultSpec::new(
                        kube_emulator::Fault::Compact {
                            keep_last_n: Some(0),
                            below_rv: None,
                        },
                    ));
                    let open = emu.stats().open_watches.max(1);
                    inject(
                        "compaction+reset(410)",
                        kube_emulator::FaultSpec::new(kube_emulator::Fault::DropWatches {
                            after_ms: 0,
                        })
                        .count(open),
                    );
                }
                if t >= next_reset {
                    next_reset += options.fault_interval;
                    let open = emu.stats().open_watches.max(1);
                    inject(
                        "reset",
                        kube_emulator::FaultSpec::new(kube_emulator::Fault::ResetWatches {
                            after_ms: 0,
                        })
                        .count(open),
                    );
                }
            }
        }
        if t >= next_table {
            next_table += options.refresh;
            let now = operator.sample()?;
            let header = format!(
                "t={:>5.1}s  operator cpu {:.1}% (total {:.2}s)  open watches {}  objects {}  faults {}",
                t.as_secs_f64(),
                now.cpu_pct_since(&cpu_start),
                now.cpu.saturating_sub(cpu_start.cpu).as_secs_f64(),
                emu.stats().open_watches,
                workload.live.len(),
                summary.faults.values().sum::<u64>(),
            );
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", render_table(&policies(&emu), &header));
            let _ = std::io::stdout().flush();
        }
        // After a fault, the first moment every policy is Ready and every cache equals the
        // server (checked every second) ends its recovery; after `duration`, the run ends as
        // soon as that holds.
        if (pending.is_some() || !running) && t >= next_check {
            next_check = t + Duration::from_secs(1);
            let all = policies(&emu);
            // A fault counts as recovered once the operator has reacted to it (a reconnect or
            // a relist since) and everything is back.
            let reacted = pending.is_none_or(|(_, before)| disruptions(&all) > before);
            let converged =
                reacted && !all.is_empty() && all.iter().all(crate::policy::is_ready) && {
                    let (matched, total, _) = compare_caches(&client, &operator, &all).await;
                    total > 0 && matched == total
                };
            if converged {
                if let Some((since, _)) = pending.take() {
                    let took = since.elapsed();
                    summary.recoveries.push(took);
                    println!(
                        "t={:>5.1}s  recovered in {:.1}s: every policy Ready, every cache matches",
                        t.as_secs_f64(),
                        took.as_secs_f64()
                    );
                }
                if !running {
                    break;
                }
            }
        }
        if !running && t > options.duration + Duration::from_secs(30) {
            break;
        }
    }
    if interrupted {
        println!("interrupted: stopping");
    }
    let all = policies(&emu);
    let (matched, total, mismatches) = compare_caches(&client, &operator, &all).await;
    summary.matched = matched;
    summary.watches = total;
    summary.mismatches = mismatches;
    summary.writes = workload.writes;
    for p in &all {
        let status = p.status.clone().unwrap_or_default();
        summary.reconnects += status.reconnects;
        summary.relists += status.targets.iter().map(|t| t.relists).sum::<i64>();
    }
    summary.recover = if pending.is_some() {
        None
    } else {
        Some(summary.recoveries.iter().copied().max().unwrap_or_default())
    };
    let end = operator.sample().unwrap_or(cpu_start);
    summary.cpu = end.cpu.saturating_sub(cpu_start.cpu);
    summary.cpu_pct = end.cpu_pct_since(&cpu_start);
    let not_watching: Vec<String> = all
        .iter()
        .flat_map(|p| {
            p.status
                .clone()
                .unwrap_or_default()
                .targets
                .into_iter()
                .filter(|t| t.state != TargetState::Watching)
                .map(|t| {
                    format!(
                        "{} {} {}",
                        p.metadata.name.clone().unwrap_or_default(),
                        t.kind,
                        t.state.as_str()
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for n in not_watching {
        summary
            .mismatches
            .push(format!("not watching at the end: {n}"));
    }
    // Stop the operator gracefully, then the emulator.
    let mut operator = operator;
    let _ = operator.terminate(Duration::from_secs(10)).await;
    operator.kill9()?;
    emu.shutdown().await;
    Ok(summary)
}
