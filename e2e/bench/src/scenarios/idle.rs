//! Issue 7 §1, idle cost: CPU of each side's process while it watches `objects` ConfigMaps
//! and nothing changes (the emulator sends a bookmark every 5 s), over `duration`.

use std::time::Duration;

use crate::BenchError;
use crate::child::{ChildSpec, ObjectKind, Side};
use crate::driver::{Bench, emulator_config, start_emulator};
use crate::objects;
use crate::report::{Section, Table, f, met};

/// Settings of the idle benchmark.
#[derive(Clone, Debug)]
pub struct IdleOpts {
    /// ConfigMaps watched.
    pub objects: usize,
    /// Measured window.
    pub duration: Duration,
}

/// CPU of both sides, as a share of one core (1.0 = one core busy).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdleResult {
    /// watchpool.
    pub pool_core: f64,
    /// Peer (watcher + reflector).
    pub peer_core: f64,
    /// CPU seconds watchpool used in the window.
    pub pool_cpu_s: f64,
    /// CPU seconds the peer used in the window.
    pub peer_cpu_s: f64,
}

/// Runs the benchmark (both sides at once, each in its own process and namespace).
pub async fn run(bench: &Bench, opts: &IdleOpts) -> Result<IdleResult, BenchError> {
    let emu = start_emulator(emulator_config(10_000, 10_000)).await?;
    let kind = ObjectKind::ConfigMap;
    let mut children = Vec::new();
    for side in [Side::Pool, Side::Peer] {
        let ns = format!("idle-{side:?}").to_lowercase();
        objects::populate(&emu, kind, &ns, opts.objects, 2048)?;
        let mut spec = ChildSpec::new(side, &emu.url(), kind, vec![ns]);
        spec.store = true;
        let mut child = bench.spawn(&spec).await?;
        child
            .wait_synced(1, Some(opts.objects as u64), Duration::from_secs(120))
            .await?;
        children.push(child);
    }
    // Let start-up work (allocations, the first health publication) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<f64> = children.iter().map(|c| c.cpu_seconds()).collect();
    let started = std::time::Instant::now();
    tokio::time::sleep(opts.duration).await;
    let window = started.elapsed().as_secs_f64();
    let used: Vec<f64> = children
        .iter()
        .zip(&before)
        .map(|(c, b)| c.cpu_seconds() - b)
        .collect();
    for c in children {
        c.quit().await;
    }
    emu.shutdown().await;
    let pool_cpu_s = used.first().copied().unwrap_or(0.0);
    let peer_cpu_s = used.get(1).copied().unwrap_or(0.0);
    Ok(IdleResult {
        pool_core: pool_cpu_s / window,
        peer_core: peer_cpu_s / window,
        pool_cpu_s,
        peer_cpu_s,
    })
}

/// The report section.
pub fn section(opts: &IdleOpts, r: &IdleResult, command: &str) -> Section {
    let mut t = Table::comparison(&format!(
        "Idle: {} ConfigMaps watched, nothing changing, {} s",
        opts.objects,
        opts.duration.as_secs()
    ));
    t.row(vec![
        "CPU, % of one core".into(),
        format!("{:.3} %", r.pool_core * 100.0),
        format!("{:.3} %", r.peer_core * 100.0),
        if r.peer_cpu_s > 0.0 {
            format!("{:.2}×", r.pool_cpu_s / r.peer_cpu_s)
        } else {
            "n/a".into()
        },
        "< 0.1 %".into(),
        met(r.pool_core < 0.001),
    ]);
    t.row(vec![
        "CPU seconds in the window".into(),
        f(r.pool_cpu_s, 2),
        f(r.peer_cpu_s, 2),
        String::new(),
        String::new(),
        String::new(),
    ]);
    t.note("watchpool: one pool, one target (policy defaults); peer: kube-runtime `watcher()` + `default_backoff()` + reflector store of typed ConfigMaps. Both synced before the window starts; CPU is utime+stime of each process (resolution 10 ms). The emulator sends a bookmark every 5 s.");
    Section {
        id: "idle".into(),
        tables: vec![t],
        command: command.into(),
    }
}
