//! Issue 7 §8, CPU budget accuracy: pools with budgets of 20m, 50m and 200m (and one with
//! no effective budget, to show the demand) are fed more events than their budgets allow, at
//! the same time; each pool's process CPU over the window is compared with its budget.
//!
//! To make events expensive without making the emulator the bottleneck, each pool watches its
//! namespace `copies` times (targets that differ only by a field selector matching every
//! object), so that every write reaches it `copies` times.

use std::time::{Duration, Instant};

use crate::BenchError;
use crate::child::{ChildSpec, Knobs, ObjectKind, Side};
use crate::driver::{Bench, emulator_config, start_emulator};
use crate::objects;
use crate::report::{Section, Table, f, met};

/// Settings of the budget benchmark.
#[derive(Clone, Debug)]
pub struct BudgetOpts {
    /// Budgets in millicores; the last one is the demand reference when `reference` is set.
    pub budgets: Vec<u64>,
    /// Also run a pool with a 4-core budget, to show what the pools would use unthrottled.
    pub reference: bool,
    /// Writes per second per namespace.
    pub writes_per_sec: u64,
    /// Watches of the same namespace per pool.
    pub copies: usize,
    /// ConfigMap size.
    pub size: usize,
    /// Warm-up (fills the meter's 10 s window) before the measured window.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
}

impl Default for BudgetOpts {
    fn default() -> Self {
        BudgetOpts {
            budgets: vec![20, 50, 200],
            reference: true,
            writes_per_sec: 400,
            copies: 20,
            size: 8192,
            warmup: Duration::from_secs(12),
            duration: Duration::from_secs(30),
        }
    }
}

/// One pool's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BudgetRow {
    /// Budget in millicores (4000 for the reference).
    pub budget: u64,
    /// Process CPU over the window, millicores.
    pub process_millis: f64,
    /// The pool's own meter at the end of the window, millicores (10 s average).
    pub meter_millis: f64,
    /// Events processed per second in the window.
    pub events_per_sec: f64,
    /// The pool said it was throttled at the end.
    pub throttled: bool,
}

/// Runs the benchmark.
pub async fn run(bench: &Bench, opts: &BudgetOpts) -> Result<Vec<BudgetRow>, BenchError> {
    let emu = start_emulator(emulator_config(50_000, 20_000)).await?;
    let kind = ObjectKind::ConfigMap;
    let objects_per_ns = 20;
    let mut budgets = opts.budgets.clone();
    if opts.reference {
        budgets.push(4000);
    }
    let mut children = Vec::new();
    for b in &budgets {
        let ns = format!("bg-{b}");
        objects::populate(&emu, kind, &ns, objects_per_ns, opts.size)?;
        let mut spec = ChildSpec::new(Side::Pool, &emu.url(), kind, vec![ns.clone()]);
        spec.copies = opts.copies;
        spec.knobs = Knobs {
            cpu_millis: *b,
            ..Knobs::default()
        };
        let mut child = bench.spawn(&spec).await?;
        child
            .wait_synced(opts.copies as u64, None, Duration::from_secs(60))
            .await?;
        children.push((ns, child));
    }
    // The writer: every 20 ms, each namespace gets its share of modifications.
    let stop = Instant::now() + opts.warmup + opts.duration + Duration::from_secs(1);
    let namespaces: Vec<String> = children.iter().map(|(ns, _)| ns.clone()).collect();
    let rate = opts.writes_per_sec;
    let size = opts.size;
    let emu = std::sync::Arc::new(emu);
    let writer_emu = emu.clone();
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let per_tick = (rate as f64 / 50.0).max(1.0);
        let mut carry = 0.0;
        let mut seq = 1u64;
        while Instant::now() < stop {
            tick.tick().await;
            carry += per_tick;
            let n = carry.floor() as usize;
            carry -= n as f64;
            for _ in 0..n {
                for ns in &namespaces {
                    let i = (seq as usize) % objects_per_ns;
                    if objects::modify(&writer_emu, kind, ns, i, size, seq).is_err() {
                        return;
                    }
                }
                seq += 1;
            }
        }
    });
    tokio::time::sleep(opts.warmup).await;
    let mut before = Vec::new();
    for (_, c) in children.iter_mut() {
        let stats = c.stats().await?;
        before.push((c.cpu_seconds(), stats.events));
    }
    let started = Instant::now();
    tokio::time::sleep(opts.duration).await;
    let window = started.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for ((_, c), (cpu0, ev0), b) in children
        .iter_mut()
        .zip(before)
        .zip(&budgets)
        .map(|((a, b), c)| (a, b, c))
    {
        let cpu = c.cpu_seconds() - cpu0;
        let stats = c.stats().await?;
        rows.push(BudgetRow {
            budget: *b,
            process_millis: cpu / window * 1000.0,
            meter_millis: stats.meter_millis,
            events_per_sec: (stats.events.saturating_sub(ev0)) as f64 / window,
            throttled: stats.throttled,
        });
    }
    let _ = writer.await;
    for (_, c) in children {
        c.quit().await;
    }
    if let Ok(emu) = std::sync::Arc::try_unwrap(emu) {
        emu.shutdown().await;
    }
    Ok(rows)
}

/// The report section.
pub fn section(opts: &BudgetOpts, rows: &[BudgetRow], command: &str) -> Section {
    let mut t = Table::new(
        &format!(
            "CPU budget accuracy: {} watches of one namespace per pool, {} writes/s of {} B ConfigMaps ({} events/s offered to each pool), {} s window",
            opts.copies,
            opts.writes_per_sec,
            opts.size,
            opts.writes_per_sec * opts.copies as u64,
            opts.duration.as_secs()
        ),
        &[
            "budget",
            "process CPU",
            "pool meter (10 s avg)",
            "process / budget",
            "events/s processed",
            "throttled",
            "target",
            "met",
        ],
    );
    for r in rows {
        let reference = opts.reference && r.budget == 4000;
        let ratio = r.process_millis / r.budget as f64;
        t.row(vec![
            if reference {
                "none (4000m: the demand)".into()
            } else {
                format!("{}m", r.budget)
            },
            format!("{}m", f(r.process_millis, 1)),
            format!("{}m", f(r.meter_millis, 1)),
            if reference {
                "—".into()
            } else {
                format!("{ratio:.2}×")
            },
            f(r.events_per_sec, 0),
            r.throttled.to_string(),
            if reference {
                "—".into()
            } else {
                "≤ budget (meter), process near it".into()
            },
            if reference {
                String::new()
            } else {
                met(r.meter_millis <= r.budget as f64 * 1.1)
            },
        ]);
    }
    t.note("All pools run at once, each in its own process; the writer modifies each namespace's 20 ConfigMaps in turn. Process CPU is utime+stime of the whole child over the window, so it includes what the pool's meter does not count (the HTTP connection tasks reading the sockets, the runtime itself); the meter counts the pool's own tasks' thread CPU.");
    let id = if opts.budgets == [20, 50, 200] {
        "cpu-budget".to_string()
    } else {
        let list: Vec<String> = opts.budgets.iter().map(u64::to_string).collect();
        format!("cpu-budget-{}", list.join("-"))
    };
    Section {
        id,
        tables: vec![t],
        command: command.into(),
    }
}
