//! Issue 7 §4 and §5: the reset storm and the persistent outage.
//!
//! Both sides watch the same number of namespaces (one watch each, their own namespaces, so
//! that the emulator's request log tells their requests apart by namespace prefix) and meet
//! the same fault at the same moment.

use std::time::{Duration, Instant};

use kube_emulator::{Emulator, ErrorBody, Fault, FaultSpec, RequestRecord};

use crate::BenchError;
use crate::child::{ChildSpec, Knobs, ObjectKind, Side};
use crate::driver::{
    Bench, ChildProc, emulator_config, last_seq, now_ms, record_ms, requests_in, start_emulator,
};
use crate::objects;
use crate::report::{Section, Table, f, met, times};

/// Settings of the reset storm and outage benchmarks.
#[derive(Clone, Debug)]
pub struct FaultOpts {
    /// Watches per side.
    pub watches: usize,
    /// Length of the fault.
    pub duration: Duration,
    /// ConfigMaps per namespace.
    pub objects: usize,
    /// watchpool: one target per namespace instead of one target listing them all.
    pub split_targets: bool,
}

impl FaultOpts {
    /// The reset storm: 100 watches, 60 s.
    pub fn storm() -> FaultOpts {
        FaultOpts {
            watches: 100,
            duration: Duration::from_secs(60),
            objects: 5,
            split_targets: false,
        }
    }

    /// The outage: 5 minutes (10 watches per side).
    pub fn outage() -> FaultOpts {
        FaultOpts {
            watches: 10,
            duration: Duration::from_secs(300),
            objects: 5,
            split_targets: false,
        }
    }
}

/// Requests of one side during a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideRequests {
    /// Every request.
    pub total: u64,
    /// List requests.
    pub lists: u64,
    /// Watch requests.
    pub watches: u64,
    /// CPU seconds of the side's process in the window.
    pub cpu_s: f64,
}

/// The result of the reset storm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StormResult {
    /// watchpool.
    pub pool: SideRequests,
    /// Peer.
    pub peer: SideRequests,
    /// Length of the window in seconds.
    pub window_s: f64,
    /// Watches per side.
    pub watches: usize,
    /// watchpool ran one target per namespace.
    pub split_targets: bool,
}

/// Starts both sides on `watches` namespaces each and waits until they are synced.
async fn start_sides(
    bench: &Bench,
    emu: &Emulator,
    opts: &FaultOpts,
    prefix: &str,
    knobs: Knobs,
) -> Result<(ChildProc, ChildProc), BenchError> {
    let kind = ObjectKind::ConfigMap;
    let mut procs = Vec::new();
    for side in [Side::Pool, Side::Peer] {
        let namespaces: Vec<String> = (0..opts.watches)
            .map(|i| format!("{prefix}-{side:?}-{i}").to_lowercase())
            .collect();
        for ns in &namespaces {
            objects::populate(emu, kind, ns, opts.objects, 1024)?;
        }
        let mut spec = ChildSpec::new(side, &emu.url(), kind, namespaces);
        spec.knobs = knobs;
        spec.split_targets = opts.split_targets;
        let mut child = bench.spawn(&spec).await?;
        child
            .wait_synced(opts.watches as u64, None, Duration::from_secs(120))
            .await?;
        procs.push(child);
    }
    let peer = procs
        .pop()
        .ok_or_else(|| BenchError::Setup("no peer".into()))?;
    let pool = procs
        .pop()
        .ok_or_else(|| BenchError::Setup("no pool".into()))?;
    Ok((pool, peer))
}

fn count(records: &[RequestRecord]) -> SideRequests {
    SideRequests {
        total: records.len() as u64,
        lists: records.iter().filter(|r| r.verb == "list").count() as u64,
        watches: records.iter().filter(|r| r.verb == "watch").count() as u64,
        cpu_s: 0.0,
    }
}

/// Issue 7 §4: every watch connection is reset one second after it opens, for `duration`.
pub async fn storm(bench: &Bench, opts: &FaultOpts) -> Result<StormResult, BenchError> {
    let emu = start_emulator(emulator_config(100_000, 10_000)).await?;
    // The pool runs with the policy defaults, including its 100m CPU budget.
    let knobs = Knobs {
        cpu_millis: 100,
        ..Knobs::default()
    };
    let (pool, peer) = start_sides(bench, &emu, opts, "st", knobs).await?;
    let mark = last_seq(&emu);
    let cpu0 = (pool.cpu_seconds(), peer.cpu_seconds());
    let started = Instant::now();
    let fault = emu
        .faults()
        .add(FaultSpec::new(Fault::DropWatches { after_ms: 1000 }).resource("configmaps"));
    tokio::time::sleep(opts.duration).await;
    let end = last_seq(&emu);
    let window_s = started.elapsed().as_secs_f64();
    let cpu1 = (pool.cpu_seconds(), peer.cpu_seconds());
    emu.faults().remove(fault);
    let mut pool_req = count(&requests_in(&emu, "st-pool-", mark, Some(end)));
    let mut peer_req = count(&requests_in(&emu, "st-peer-", mark, Some(end)));
    pool_req.cpu_s = cpu1.0 - cpu0.0;
    peer_req.cpu_s = cpu1.1 - cpu0.1;
    pool.quit().await;
    peer.quit().await;
    emu.shutdown().await;
    Ok(StormResult {
        pool: pool_req,
        peer: peer_req,
        window_s,
        watches: opts.watches,
        split_targets: opts.split_targets,
    })
}

/// The reset storm's report section.
pub fn storm_section(r: &StormResult, command: &str) -> Section {
    let mut t = Table::comparison(&format!(
        "Reset storm: {} watches per side, every watch connection reset 1 s after it opens, {:.0} s{}",
        r.watches,
        r.window_s,
        if r.split_targets {
            " (watchpool: one target per namespace)"
        } else {
            ""
        }
    ));
    let per_min = |n: u64| n as f64 / r.watches as f64 / (r.window_s / 60.0);
    let core = |s: f64| s / r.window_s;
    t.row(vec![
        "CPU of the process, % of one core".into(),
        format!("{:.2} %", core(r.pool.cpu_s) * 100.0),
        format!("{:.2} %", core(r.peer.cpu_s) * 100.0),
        times(r.pool.cpu_s, r.peer.cpu_s),
        "< 2 % (and under the pool's 100m budget)".into(),
        met(core(r.pool.cpu_s) < 0.02),
    ]);
    t.row(vec![
        "requests per watch per minute".into(),
        f(per_min(r.pool.total), 1),
        f(per_min(r.peer.total), 1),
        times(r.pool.total as f64, r.peer.total as f64),
        "—".into(),
        String::new(),
    ]);
    t.row(vec![
        "lists per watch per minute".into(),
        f(per_min(r.pool.lists), 2),
        f(per_min(r.peer.lists), 2),
        times(r.pool.lists as f64, r.peer.lists as f64),
        "no relist after a reset".into(),
        met(r.pool.lists == 0),
    ]);
    t.note(format!("Fault: the emulator's `drop_watches` with `after_ms: 1000` on every ConfigMap watch (a TCP-level abort, no terminating chunk), in force for the whole window. watchpool: one pool of {} over the namespaces, policy defaults (backoff 800ms → 30s, jitter 0.5, resetAfter 2m, CPU budget 100m); peer: one kube-runtime `watcher()` with `default_backoff()` per namespace, in one process.", if r.split_targets { "one target per namespace" } else { "one target" }));
    Section {
        id: if r.split_targets {
            "reset-storm-split".into()
        } else {
            "reset-storm".into()
        },
        tables: vec![t],
        command: command.into(),
    }
}

/// The result of the outage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutageResult {
    /// Bucket width in seconds.
    pub bucket_s: f64,
    /// Requests per watch in each bucket, watchpool.
    pub pool_buckets: Vec<f64>,
    /// Requests per watch in each bucket, peer.
    pub peer_buckets: Vec<f64>,
    /// Requests per watch over the whole outage, watchpool.
    pub pool_total: f64,
    /// Requests per watch over the whole outage, peer.
    pub peer_total: f64,
    /// Seconds from the end of the outage until every watch of the side was open again.
    pub pool_recovery_s: Option<f64>,
    /// Same, peer.
    pub peer_recovery_s: Option<f64>,
    /// Watches per side.
    pub watches: usize,
    /// Outage length in seconds.
    pub duration_s: f64,
    /// CPU seconds during the outage, watchpool.
    pub pool_cpu_s: f64,
    /// CPU seconds during the outage, peer.
    pub peer_cpu_s: f64,
}

/// Issue 7 §5: every request answered 500 for `duration` (open watches cut when it starts).
pub async fn outage(bench: &Bench, opts: &FaultOpts) -> Result<OutageResult, BenchError> {
    let emu = start_emulator(emulator_config(100_000, 10_000)).await?;
    let knobs = Knobs {
        cpu_millis: 100,
        ..Knobs::default()
    };
    let (pool, peer) = start_sides(bench, &emu, opts, "out", knobs).await?;
    let mark = last_seq(&emu);
    let cpu0 = (pool.cpu_seconds(), peer.cpu_seconds());
    let t0 = now_ms();
    let error = emu.faults().add(FaultSpec::new(Fault::HttpError {
        code: 500,
        retry_after: None,
        body: ErrorBody::Json,
        message: None,
    }));
    let cut = emu
        .faults()
        .add(FaultSpec::new(Fault::DropWatches { after_ms: 0 }).resource("configmaps"));
    tokio::time::sleep(opts.duration).await;
    emu.faults().remove(error);
    emu.faults().remove(cut);
    let t1 = now_ms();
    let cpu1 = (pool.cpu_seconds(), peer.cpu_seconds());
    // Recovery: wait until every namespace of each side has an answered watch after t1.
    let backoff_max = Duration::from_millis(knobs.backoff_max_ms);
    let deadline = Instant::now() + backoff_max + Duration::from_secs(15);
    let (mut pool_rec, mut peer_rec) = (None, None);
    while Instant::now() < deadline && (pool_rec.is_none() || peer_rec.is_none()) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        pool_rec = pool_rec.or_else(|| recovered(&emu, "out-pool-", mark, t1, opts.watches));
        peer_rec = peer_rec.or_else(|| recovered(&emu, "out-peer-", mark, t1, opts.watches));
    }
    let width_ms = (opts.duration.as_millis() as i64 / 10).max(1000);
    let buckets = (opts.duration.as_millis() as u64)
        .div_ceil(width_ms as u64)
        .max(1) as usize;
    let per_bucket = |prefix: &str| {
        let mut v = vec![0.0; buckets];
        let mut total = 0.0;
        for r in requests_in(&emu, prefix, mark, None) {
            let Some(t) = record_ms(&r) else { continue };
            if t < t0 || t >= t1 {
                continue;
            }
            total += 1.0 / opts.watches as f64;
            let i = usize::try_from((t - t0) / width_ms).unwrap_or(0);
            if let Some(b) = v.get_mut(i.min(buckets - 1)) {
                *b += 1.0 / opts.watches as f64;
            }
        }
        (v, total)
    };
    let (pool_buckets, pool_total) = per_bucket("out-pool-");
    let (peer_buckets, peer_total) = per_bucket("out-peer-");
    pool.quit().await;
    peer.quit().await;
    emu.shutdown().await;
    Ok(OutageResult {
        bucket_s: width_ms as f64 / 1000.0,
        pool_buckets,
        peer_buckets,
        pool_total,
        peer_total,
        pool_recovery_s: pool_rec,
        peer_recovery_s: peer_rec,
        watches: opts.watches,
        duration_s: (t1 - t0) as f64 / 1000.0,
        pool_cpu_s: cpu1.0 - cpu0.0,
        peer_cpu_s: cpu1.1 - cpu0.1,
    })
}

/// Seconds after `t1` by which every namespace under `prefix` had an answered watch.
fn recovered(emu: &Emulator, prefix: &str, mark: u64, t1: i64, watches: usize) -> Option<f64> {
    let mut first: std::collections::HashMap<String, i64> = Default::default();
    for r in requests_in(emu, prefix, mark, None) {
        let Some(t) = record_ms(&r) else { continue };
        if r.verb == "watch" && r.status == 200 && t >= t1 {
            first.entry(r.namespace.clone()).or_insert(t);
        }
    }
    (first.len() >= watches)
        .then(|| {
            first
                .values()
                .copied()
                .max()
                .map(|t| (t - t1) as f64 / 1000.0)
        })
        .flatten()
}

/// The outage's report section.
pub fn outage_section(r: &OutageResult, command: &str) -> Section {
    let mut t = Table::new(
        &format!(
            "Outage: every request answered 500 for {:.0} s, {} watches per side — requests per watch",
            r.duration_s, r.watches
        ),
        &["window", "watchpool", "peer", "ratio"],
    );
    for (i, (p, q)) in r.pool_buckets.iter().zip(&r.peer_buckets).enumerate() {
        let from = i as f64 * r.bucket_s;
        t.row(vec![
            format!("{:.0}–{:.0} s", from, from + r.bucket_s),
            f(*p, 1),
            f(*q, 1),
            times(*p, *q),
        ]);
    }
    t.row(vec![
        "whole outage".into(),
        f(r.pool_total, 1),
        f(r.peer_total, 1),
        times(r.pool_total, r.peer_total),
    ]);
    let last_pool = r.pool_buckets.last().copied().unwrap_or(0.0);
    let last_peer = r.peer_buckets.last().copied().unwrap_or(0.0);
    let mut s = Table::comparison("Outage: converged rate and recovery");
    let per_max = |x: f64| x / r.bucket_s * 30.0;
    s.row(vec![
        "requests per watch per backoff.max (30 s), last window".into(),
        f(per_max(last_pool), 2),
        f(per_max(last_peer), 2),
        times(last_pool, last_peer),
        "≤ 1".into(),
        met(per_max(last_pool) <= 1.0),
    ]);
    let rec = |x: Option<f64>| x.map_or_else(|| "not within 45 s".into(), |s| format!("{s:.1} s"));
    s.row(vec![
        "time until every watch is open again after the outage".into(),
        rec(r.pool_recovery_s),
        rec(r.peer_recovery_s),
        String::new(),
        "≤ backoff.max (30 s)".into(),
        met(r.pool_recovery_s.is_some_and(|s| s <= 30.0)),
    ]);
    s.row(vec![
        "CPU during the outage, % of one core".into(),
        format!("{:.2} %", r.pool_cpu_s / r.duration_s * 100.0),
        format!("{:.2} %", r.peer_cpu_s / r.duration_s * 100.0),
        times(r.pool_cpu_s, r.peer_cpu_s),
        "—".into(),
        String::new(),
    ]);
    s.note("Fault: the emulator's `http_error` 500 on every request plus `drop_watches` on the open ConfigMap watches, both removed at the end. watchpool: policy defaults (backoff 800ms → 30s, factor 2, jitter 0.5, jitter drawn before the cap, so a converged target waits exactly 30 s); peer: kube-runtime `watcher()` with `default_backoff()`.");
    Section {
        id: "outage".into(),
        tables: vec![t, s],
        command: command.into(),
    }
}
