//! Issue 7 §2, throughput: how fast each side processes a burst of watch events.
//!
//! Each side watches its own namespace holding `objects` ConfigMaps of about 2 KiB. Once it is
//! synced, the emulator stalls its watch stream, `events` modifications and then a sentinel
//! object are written, and the stall ends: the whole burst arrives at once, as fast as the
//! emulator can send it. The time from the end of the stall until the side has processed the
//! sentinel gives events per second; the CPU time the side's process used meanwhile gives CPU
//! per event (the steadier figure on a shared machine). Sides and rounds alternate.

use std::time::{Duration, Instant};

use kube_emulator::{Emulator, Fault, FaultSpec};

use crate::BenchError;
use crate::child::{ChildSpec, ObjectKind, Side};
use crate::driver::{Bench, emulator_config, start_emulator};
use crate::objects;
use crate::report::{Section, Table, f, met, times};
use crate::scenarios::{median, wait_fault_hits};

/// Settings of the throughput benchmark.
#[derive(Clone, Debug)]
pub struct ThroughputOpts {
    /// Events per burst.
    pub events: usize,
    /// Objects in each namespace (the burst modifies them in turn).
    pub objects: usize,
    /// Size of each ConfigMap.
    pub size: usize,
    /// Rounds per side and case.
    pub rounds: usize,
}

impl Default for ThroughputOpts {
    fn default() -> Self {
        ThroughputOpts {
            events: 20_000,
            objects: 500,
            size: 2048,
            rounds: 3,
        }
    }
}

/// The result of one case (full objects or metadata only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaseResult {
    /// `full` or `metadataOnly`.
    pub case: String,
    /// Median events per second, watchpool.
    pub pool_eps: f64,
    /// Median events per second, peer.
    pub peer_eps: f64,
    /// Median CPU microseconds per event, watchpool.
    pub pool_cpu_us: f64,
    /// Median CPU microseconds per event, peer.
    pub peer_cpu_us: f64,
}

impl CaseResult {
    /// Events per CPU second, watchpool over peer (> 1: watchpool is ahead).
    pub fn cpu_ratio(&self) -> f64 {
        if self.pool_cpu_us == 0.0 {
            0.0
        } else {
            self.peer_cpu_us / self.pool_cpu_us
        }
    }

    /// Events per wall second, watchpool over peer.
    pub fn wall_ratio(&self) -> f64 {
        if self.peer_eps == 0.0 {
            0.0
        } else {
            self.pool_eps / self.peer_eps
        }
    }
}

struct Burst {
    eps: f64,
    cpu_us: f64,
}

/// Runs the benchmark: full objects and metadata only.
pub async fn run(bench: &Bench, opts: &ThroughputOpts) -> Result<Vec<CaseResult>, BenchError> {
    let emu = start_emulator(emulator_config(
        opts.events * 2 + 10_000,
        opts.events * 2 + 10_000,
    ))
    .await?;
    let per_write = pilot_write_cost(&emu, opts)?;
    let mut results = Vec::new();
    for metadata_only in [false, true] {
        let case = if metadata_only {
            "metadataOnly"
        } else {
            "full"
        };
        let mut pool = Vec::new();
        let mut peer = Vec::new();
        for round in 0..opts.rounds {
            for side in [Side::Pool, Side::Peer] {
                let ns = format!("tp-{case}-{side:?}-{round}").to_lowercase();
                let burst = burst(bench, &emu, opts, side, &ns, metadata_only, per_write).await?;
                eprintln!(
                    "throughput {case} {side:?} round {round}: {:.0} events/s, {:.1} µs CPU/event",
                    burst.eps, burst.cpu_us
                );
                match side {
                    Side::Pool => pool.push(burst),
                    Side::Peer => peer.push(burst),
                }
            }
        }
        let eps = |v: &[Burst]| median(&v.iter().map(|b| b.eps).collect::<Vec<_>>());
        let cpu = |v: &[Burst]| median(&v.iter().map(|b| b.cpu_us).collect::<Vec<_>>());
        results.push(CaseResult {
            case: case.into(),
            pool_eps: eps(&pool),
            peer_eps: eps(&peer),
            pool_cpu_us: cpu(&pool),
            peer_cpu_us: cpu(&peer),
        });
    }
    emu.shutdown().await;
    Ok(results)
}

/// Seconds per in-process write, measured on a scratch namespace.
fn pilot_write_cost(emu: &Emulator, opts: &ThroughputOpts) -> Result<f64, BenchError> {
    let n = 300.min(opts.events).max(10);
    objects::populate(emu, ObjectKind::ConfigMap, "tp-pilot", 10, opts.size)?;
    let started = Instant::now();
    for i in 0..n {
        objects::modify(
            emu,
            ObjectKind::ConfigMap,
            "tp-pilot",
            i % 10,
            opts.size,
            i as u64,
        )?;
    }
    Ok(started.elapsed().as_secs_f64() / n as f64)
}

async fn burst(
    bench: &Bench,
    emu: &Emulator,
    opts: &ThroughputOpts,
    side: Side,
    ns: &str,
    metadata_only: bool,
    per_write: f64,
) -> Result<Burst, BenchError> {
    let kind = ObjectKind::ConfigMap;
    objects::populate(emu, kind, ns, opts.objects, opts.size)?;
    let mut spec = ChildSpec::new(side, &emu.url(), kind, vec![ns.to_string()]);
    spec.metadata_only = metadata_only;
    let mut child = bench.spawn(&spec).await?;
    child.wait_synced(1, None, Duration::from_secs(60)).await?;
    // Long enough to write the whole burst while the stream is held back.
    let stall = 1.0 + 2.0 * per_write * (opts.events + 1) as f64;
    let fault = emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: Some(stall) })
            .resource(kind.plural())
            .namespace(ns)
            .count(1),
    );
    let stall_start = Instant::now();
    wait_fault_hits(emu, fault, 1, Duration::from_secs(10)).await?;
    for i in 0..opts.events {
        objects::modify(emu, kind, ns, i % opts.objects, opts.size, i as u64 + 1)?;
    }
    let sentinel = format!("sentinel-{ns}");
    objects::sentinel(emu, kind, ns, &sentinel)?;
    let stall_end = stall_start + Duration::from_secs_f64(stall);
    if Instant::now() > stall_end {
        eprintln!("warning: the burst took longer to write than the stall ({stall:.1} s)");
    }
    tokio::time::sleep_until(stall_end.into()).await;
    let cpu0 = child.cpu_seconds();
    let timeout = Duration::from_secs(120);
    let answer = child.wait_object(&sentinel, timeout).await?;
    let wall = stall_end.elapsed().as_secs_f64();
    let cpu1 = child.cpu_seconds();
    emu.faults().remove(fault);
    child.quit().await;
    if !answer.found {
        return Err(BenchError::Setup(format!(
            "{side:?} did not see the end of the burst within {timeout:?}"
        )));
    }
    let events = (opts.events + 1) as f64;
    Ok(Burst {
        eps: events / wall,
        cpu_us: (cpu1 - cpu0) * 1e6 / events,
    })
}

/// The report section.
pub fn section(opts: &ThroughputOpts, results: &[CaseResult], command: &str) -> Section {
    let mut t = Table::comparison(&format!(
        "Throughput: a burst of {} events (ConfigMaps of {} B)",
        opts.events, opts.size
    ));
    for r in results {
        t.row(vec![
            format!("{}: events/s (wall)", r.case),
            f(r.pool_eps, 0),
            f(r.peer_eps, 0),
            times(r.pool_eps, r.peer_eps),
            "≥ 1.0×".into(),
            met(r.wall_ratio() >= 1.0),
        ]);
        t.row(vec![
            format!("{}: CPU µs per event", r.case),
            f(r.pool_cpu_us, 1),
            f(r.peer_cpu_us, 1),
            format!("{:.2}× events per CPU-s", r.cpu_ratio()),
            "≥ 1.0×".into(),
            met(r.cpu_ratio() >= 1.0),
        ]);
    }
    t.note("watchpool: a pool with one target (the policy's defaults, CPU budget raised to 4 cores so that it does not hold the pool back); peer: kube-runtime `watcher()` with `default_backoff()` on the typed `ConfigMap` (`Api<PartialObjectMeta<ConfigMap>>` for metadataOnly), each event's object dropped after it is counted.");
    t.note(format!("Median of {} rounds per side, sides alternating, each in its own process. Wall time runs from the end of the stall until the side has processed the last event; CPU is the child's utime+stime over that time.", opts.rounds));
    Section {
        id: "throughput".into(),
        tables: vec![t],
        command: command.into(),
    }
}
