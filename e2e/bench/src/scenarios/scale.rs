//! Issue 7 §7, scale: one real `watchpool-operator run` process, `policies` WatchPolicies of
//! `watches_per_policy` watches each (ConfigMaps, one namespace per watch, a label selector
//! picking the policy's own objects), `objects_per_watch` objects per watch, and a steady
//! change rate. The emulator runs in this process; the operator in its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube_emulator::Emulator;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::BenchError;
use crate::driver::{emulator_config, last_seq, start_emulator};
use crate::objects;
use crate::procstat;
use crate::report::{Section, Table, f};

const OPERATOR_NS: &str = "wp-system";
const API: &str = "watchpool.dev/v1alpha1";

/// Settings of the scale run.
#[derive(Clone, Debug)]
pub struct ScaleOpts {
    /// WatchPolicies.
    pub policies: usize,
    /// Watches per policy (namespaces per target).
    pub watches_per_policy: usize,
    /// ConfigMaps per watch.
    pub objects_per_watch: usize,
    /// Namespaces the watches are spread over.
    pub namespaces: usize,
    /// Modifications per second during the steady window.
    pub writes_per_sec: u64,
    /// Steady window.
    pub duration: Duration,
    /// The operator binary.
    pub operator: PathBuf,
    /// `--status-interval` of the operator.
    pub status_interval: String,
}

impl ScaleOpts {
    /// The issue's run: 1 000 policies, 5 000 watches, 50 000 objects.
    pub fn issue(operator: PathBuf) -> ScaleOpts {
        ScaleOpts {
            policies: 1000,
            watches_per_policy: 5,
            objects_per_watch: 10,
            namespaces: 100,
            writes_per_sec: 100,
            duration: Duration::from_secs(60),
            operator,
            status_interval: "10s".into(),
        }
    }
}

/// Figures of the scale run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleResult {
    /// Watches the emulator held open at the end of the steady window.
    pub open_watches: u64,
    /// Objects created.
    pub objects: u64,
    /// Seconds from the operator's start until every policy was Ready.
    pub all_ready_s: Option<f64>,
    /// Policies Ready at the end.
    pub ready: usize,
    /// RSS of the operator at the end of the window.
    pub rss_bytes: u64,
    /// CPU of the operator during the steady window, share of one core.
    pub cpu_core: f64,
    /// CPU seconds of the operator from start to all Ready.
    pub startup_cpu_s: f64,
    /// Status writes per second during the steady window.
    pub status_writes_per_sec: f64,
    /// Seconds from a spec change of one policy to its status showing the new generation Ready.
    pub reconcile_s: Option<f64>,
    /// Threads of the operator process.
    pub threads: u64,
    /// Writes per second actually made during the window.
    pub writes_per_sec: f64,
    /// Status writes from the operator's start until every policy was Ready (and 5 s more).
    pub startup_status_writes: u64,
}

fn ns_name(i: usize) -> String {
    format!("sc-{i}")
}

fn policy_namespaces(opts: &ScaleOpts, p: usize) -> Vec<String> {
    (0..opts.watches_per_policy)
        .map(|k| ns_name((p * opts.watches_per_policy + k) % opts.namespaces))
        .collect()
}

fn ready(policy: &Value) -> bool {
    policy
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn count_ready(emu: &Emulator) -> usize {
    emu.list(API, "WatchPolicy", Some(OPERATOR_NS))
        .map(|ps| ps.iter().filter(|p| ready(p)).count())
        .unwrap_or(0)
}

fn write_err(e: kube_emulator::ApiError) -> BenchError {
    BenchError::Write(format!("{e:?}"))
}

/// Creates the namespaces, objects and policies.
fn setup(emu: &Emulator, opts: &ScaleOpts) -> Result<u64, BenchError> {
    let crd = serde_json::to_value(watchpool_api::crd()).map_err(BenchError::Json)?;
    emu.create(crd).map_err(write_err)?;
    objects::namespace(emu, OPERATOR_NS)?;
    for i in 0..opts.namespaces {
        objects::namespace(emu, &ns_name(i))?;
    }
    let mut created = 0;
    for p in 0..opts.policies {
        for ns in policy_namespaces(opts, p) {
            for o in 0..opts.objects_per_watch {
                emu.create(scale_object(&ns, p, o, 0)).map_err(write_err)?;
                created += 1;
            }
        }
    }
    for p in 0..opts.policies {
        emu.create(json!({
            "apiVersion": API,
            "kind": "WatchPolicy",
            "metadata": {"name": format!("p-{p}"), "namespace": OPERATOR_NS},
            "spec": {"targets": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespaces": policy_namespaces(opts, p),
                "labelSelector": format!("pool=p-{p}")
            }]}
        }))
        .map_err(write_err)?;
    }
    Ok(created)
}

fn scale_object(ns: &str, p: usize, o: usize, seq: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("p-{p}-o-{o}"), "namespace": ns, "labels": {"pool": format!("p-{p}")}},
        "data": {"seq": seq.to_string(), "payload": "x".repeat(256)}
    })
}

/// Writes to a WatchPolicy's status between two points of the request log.
fn status_writes(emu: &Emulator, after: u64, until: u64) -> usize {
    emu.requests()
        .into_iter()
        .filter(|r| r.seq > after && r.seq <= until && r.resource == "watchpolicies/status")
        .filter(|r| matches!(r.verb.as_str(), "patch" | "update"))
        .count()
}

/// Runs the scale benchmark.
pub async fn run(opts: &ScaleOpts) -> Result<ScaleResult, BenchError> {
    if !opts.operator.exists() {
        return Err(BenchError::Setup(format!(
            "operator binary {} not found: build it first (cargo build --release -p watchpool-operator)",
            opts.operator.display()
        )));
    }
    let emu = start_emulator(emulator_config(200_000, 10_000)).await?;
    let objects = setup(&emu, opts)?;
    let dir = std::env::temp_dir().join(format!("watchpool-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(BenchError::Io)?;
    let kubeconfig = dir.join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig)
        .map_err(BenchError::Emulator)?;
    let log_path = dir.join("operator.log");
    let log = std::fs::File::create(&log_path).map_err(BenchError::Io)?;
    let started = Instant::now();
    let mut child = Command::new(&opts.operator)
        .args([
            "run",
            "--admin-addr",
            "127.0.0.1:0",
            "--status-interval",
            &opts.status_interval,
            "--log-level",
            "warn",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", OPERATOR_NS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::Io)?;
    let pid = child
        .id()
        .ok_or_else(|| BenchError::Setup("operator exited at once".into()))?;
    let mut result = ScaleResult {
        objects,
        ..ScaleResult::default()
    };
    // All Ready.
    let deadline = started + Duration::from_secs(600);
    loop {
        let n = count_ready(&emu);
        if n >= opts.policies {
            result.all_ready_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "scale: only {n} of {} policies Ready after 600 s",
                opts.policies
            );
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(BenchError::Setup(format!(
                "the operator exited: {status}; last log lines: {tail}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    result.startup_cpu_s = procstat::cpu_seconds(pid).unwrap_or(0.0);
    eprintln!(
        "scale: all ready after {:?}, {:.1} CPU s",
        result.all_ready_s, result.startup_cpu_s
    );
    // Let the first wave of status writes pass, then the steady window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mark = last_seq(&emu);
    result.startup_status_writes = status_writes(&emu, 0, mark) as u64;
    let cpu0 = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let window_start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let per_tick = opts.writes_per_sec as f64 / 50.0;
    let mut carry = 0.0;
    let mut written = 0u64;
    while window_start.elapsed() < opts.duration {
        tick.tick().await;
        carry += per_tick;
        while carry >= 1.0 {
            carry -= 1.0;
            let p = (written as usize * 7919) % opts.policies;
            let nss = policy_namespaces(opts, p);
            let ns = nss
                .get(written as usize % nss.len().max(1))
                .cloned()
                .unwrap_or_default();
            let o = written as usize % opts.objects_per_watch.max(1);
            emu.update(scale_object(&ns, p, o, written + 1))
                .map_err(write_err)?;
            written += 1;
        }
    }
    let window = window_start.elapsed().as_secs_f64();
    let end = last_seq(&emu);
    result.cpu_core = (procstat::cpu_seconds(pid).unwrap_or(0.0) - cpu0) / window;
    result.rss_bytes = procstat::rss_bytes(pid).unwrap_or(0);
    result.threads = procstat::threads(pid).unwrap_or(0);
    result.writes_per_sec = written as f64 / window;
    result.status_writes_per_sec = status_writes(&emu, mark, end) as f64 / window;
    result.open_watches = emu.stats().open_watches;
    result.ready = count_ready(&emu);

    // A spec change of one policy: one more namespace.
    let name = "p-0";
    let mut nss = policy_namespaces(opts, 0);
    let extra = ns_name((opts.watches_per_policy + 1) % opts.namespaces.max(1));
    if !nss.contains(&extra) {
        nss.push(extra);
    }
    let changed = Instant::now();
    let updated = emu
        .patch_merge(
            API,
            "WatchPolicy",
            OPERATOR_NS,
            name,
            json!({"spec": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespaces": nss, "labelSelector": "pool=p-0"}]}}),
            false,
        )
        .map_err(write_err)?;
    let generation = updated
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let deadline = changed + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(p) = emu.get(API, "WatchPolicy", OPERATOR_NS, name) {
            let observed = p
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if observed >= generation && ready(&p) {
                result.reconcile_s = Some(changed.elapsed().as_secs_f64());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

/// The report section.
pub fn section(opts: &ScaleOpts, r: &ScaleResult, command: &str) -> Section {
    let mut t = Table::new(
        &format!(
            "Scale: one operator process, {} policies, {} watches, {} objects",
            opts.policies,
            opts.policies * opts.watches_per_policy,
            r.objects
        ),
        &["measure", "value", "note"],
    );
    let opt = |x: Option<f64>| x.map_or_else(|| "not reached".into(), |s| format!("{s:.1} s"));
    t.row(vec![
        "watches open at the emulator".into(),
        r.open_watches.to_string(),
        "the operator's own watches included".into(),
    ]);
    t.row(vec![
        "time until every policy is Ready, from process start".into(),
        opt(r.all_ready_s),
        format!("{} of {} Ready at the end", r.ready, opts.policies),
    ]);
    t.row(vec![
        "CPU used until then".into(),
        format!("{} s", f(r.startup_cpu_s, 1)),
        String::new(),
    ]);
    t.row(vec![
        "RSS".into(),
        crate::report::bytes(r.rss_bytes as f64),
        format!(
            "{} per cached object, {} threads",
            crate::report::bytes(r.rss_bytes as f64 / r.objects.max(1) as f64),
            r.threads
        ),
    ]);
    t.row(vec![
        format!(
            "CPU during {} s of steady changes ({:.0} writes/s)",
            opts.duration.as_secs(),
            r.writes_per_sec
        ),
        format!("{:.1} % of one core", r.cpu_core * 100.0),
        String::new(),
    ]);
    t.row(vec![
        "status writes per second during the steady window".into(),
        f(r.status_writes_per_sec, 2),
        format!(
            "--status-interval {}; {} status writes from start until all Ready + 5 s",
            opts.status_interval, r.startup_status_writes
        ),
    ]);
    t.row(vec![
        "spec change of one policy → status shows the new generation Ready".into(),
        r.reconcile_s
            .map_or_else(|| "not reached".into(), |s| format!("{:.0} ms", s * 1e3)),
        "a namespace added to its target".into(),
    ]);
    t.note("The policies live in the operator's namespace (trusted), each with one ConfigMap target over its namespaces and a label selector picking its own objects; the writer modifies objects of policies spread over all of them.");
    Section {
        id: "scale".into(),
        tables: vec![t],
        command: command.into(),
    }
}
