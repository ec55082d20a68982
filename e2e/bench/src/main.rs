//! `watchpool-bench`: watchpool side by side with kube-runtime, against the kube-emulator.
//!
//! ```text
//! cargo build --release -p watchpool-operator
//! cargo run --release -p watchpool-bench -- all --out docs/performance.md
//! cargo run --release -p watchpool-bench -- throughput --events 20000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use watchpool_bench::BenchError;
use watchpool_bench::driver::Bench;
use watchpool_bench::report::{Section, Table, write_section};
use watchpool_bench::scenarios::{
    budget, decode, faults, idle, memory, recovery, scale, throughput,
};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmarks of watchpool side by side with kube-runtime's watcher")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Write the result tables into this Markdown file (each benchmark's section is replaced).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct ThroughputArgs {
    /// Events per burst.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// ConfigMaps per namespace.
    #[arg(long, default_value_t = 500)]
    objects: usize,
    /// Rounds per side.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Args, Debug, Clone)]
struct MemoryArgs {
    /// Objects per measurement.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Skip the Pod measurement.
    #[arg(long)]
    no_pods: bool,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    /// ConfigMaps watched.
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// Measured window in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
}

#[derive(Args, Debug, Clone)]
struct FaultArgs {
    /// Watches per side (default: 100 for the storm, 10 for the outage).
    #[arg(long)]
    watches: Option<usize>,
    /// Fault length in seconds (default: 60 for the storm, 300 for the outage).
    #[arg(long)]
    duration: Option<u64>,
    /// watchpool: one target per namespace instead of one target listing them all.
    #[arg(long)]
    split_targets: bool,
}

#[derive(Args, Debug, Clone)]
struct RecoveryArgs {
    /// Resets measured per side.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// `timeouts.idle` of the pool, seconds.
    #[arg(long, default_value_t = 10)]
    idle: u64,
    /// Longest wait for the peer to notice a silent stream, seconds.
    #[arg(long, default_value_t = 60)]
    peer_cap: u64,
    /// Objects relisted after the 410.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
}

#[derive(Args, Debug, Clone)]
struct ScaleArgs {
    /// WatchPolicies.
    #[arg(long, default_value_t = 1000)]
    policies: usize,
    /// Watches per policy.
    #[arg(long, default_value_t = 5)]
    watches: usize,
    /// ConfigMaps per watch.
    #[arg(long, default_value_t = 10)]
    objects: usize,
    /// Steady window, seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Writes per second in the steady window.
    #[arg(long, default_value_t = 100)]
    writes_per_sec: u64,
    /// The operator binary (default: `watchpool-operator` next to this binary).
    #[arg(long)]
    operator: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct BudgetArgs {
    /// Measured window, seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Writes per second per namespace.
    #[arg(long, default_value_t = 400)]
    writes_per_sec: u64,
    /// Watches of the namespace per pool.
    #[arg(long, default_value_t = 20)]
    watches: usize,
    /// Budgets in millicores, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "20,50,200")]
    budgets: Vec<u64>,
    /// Size of each ConfigMap in bytes.
    #[arg(long, default_value_t = 8192)]
    size: usize,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// §1 CPU of an idle pool vs watcher + reflector.
    Idle(IdleArgs),
    /// §2 events per second through a pool vs a bare watcher.
    Throughput(ThroughputArgs),
    /// §3 memory per cached object vs reflector stores.
    Memory(MemoryArgs),
    /// §4 every connection reset every second.
    ResetStorm(FaultArgs),
    /// §5 every request answered 500.
    Outage(FaultArgs),
    /// §6 reset → resumed watch, silent stream detection, relist after 410.
    Recovery(RecoveryArgs),
    /// §7 one operator process, 1 000 policies, 5 000 watches.
    Scale(ScaleArgs),
    /// §8 CPU budgets of 20m, 50m, 200m vs measured CPU.
    CpuBudget(BudgetArgs),
    /// The profile behind the throughput figures: line splitting and decoding, engine code
    /// as it is and the bench's variants (the engine's `memchr` newline search without its
    /// limit checks; a metadata parse that stops early).
    Profile {
        /// Lines decoded.
        #[arg(long, default_value_t = 20_000)]
        lines: usize,
    },
    /// Everything, with the issue's sizes (about 12 minutes).
    All,
    /// A measured watchpool child (internal).
    #[command(hide = true)]
    PoolChild {
        /// The child's spec as JSON.
        #[arg(long)]
        spec: String,
    },
    /// A measured kube-runtime child (internal).
    #[command(hide = true)]
    PeerChild {
        /// The child's spec as JSON.
        #[arg(long)]
        spec: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::PoolChild { spec } | Cmd::PeerChild { spec } => {
            watchpool_bench::child::run_child(&spec)
        }
        command => run_parent(command, cli.out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

const RUN: &str = "cargo run --release -p watchpool-bench --";

fn run_parent(command: Cmd, out: Option<PathBuf>) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Io)?;
    let bench = Bench::current()?;
    runtime.block_on(async move {
        let emit = |s: Section| -> Result<(), BenchError> {
            s.print();
            if let Some(path) = &out {
                write_section(path, &s)?;
            }
            Ok(())
        };
        if out.is_some() {
            emit(machine_section())?;
        }
        match command {
            Cmd::Idle(a) => emit(run_idle(&bench, &a).await?),
            Cmd::Throughput(a) => emit(run_throughput(&bench, &a).await?),
            Cmd::Memory(a) => emit(run_memory(&bench, &a).await?),
            Cmd::ResetStorm(a) => emit(run_storm(&bench, &a).await?),
            Cmd::Outage(a) => emit(run_outage(&bench, &a).await?),
            Cmd::Recovery(a) => emit(run_recovery(&bench, &a).await?),
            Cmd::Scale(a) => emit(run_scale(&bench, &a).await?),
            Cmd::CpuBudget(a) => emit(run_budget(&bench, &a).await?),
            Cmd::Profile { lines } => emit(run_profile(lines)),
            Cmd::All => {
                let started = std::time::Instant::now();
                emit(run_throughput(&bench, &defaults::<ThroughputArgs>()).await?)?;
                emit(run_profile(20_000))?;
                emit(run_memory(&bench, &defaults::<MemoryArgs>()).await?)?;
                emit(run_idle(&bench, &defaults::<IdleArgs>()).await?)?;
                emit(run_storm(&bench, &defaults::<FaultArgs>()).await?)?;
                emit(run_outage(&bench, &defaults::<FaultArgs>()).await?)?;
                emit(run_recovery(&bench, &defaults::<RecoveryArgs>()).await?)?;
                emit(run_budget(&bench, &defaults::<BudgetArgs>()).await?)?;
                emit(run_scale(&bench, &defaults::<ScaleArgs>()).await?)?;
                eprintln!("all: {:.0} s", started.elapsed().as_secs_f64());
                Ok(())
            }
            Cmd::PoolChild { .. } | Cmd::PeerChild { .. } => Ok(()),
        }
    })
}

/// The defaults clap would give a subcommand's arguments.
fn defaults<A: Args>() -> A {
    #[derive(Parser)]
    struct Wrap<T: Args> {
        #[command(flatten)]
        inner: T,
    }
    match Wrap::<A>::try_parse_from(["watchpool-bench"]) {
        Ok(w) => w.inner,
        Err(e) => e.exit(),
    }
}

fn machine_section() -> Section {
    let mut t = Table::new("Machine", &["item", "value"]);
    t.row(vec!["machine".into(), watchpool_bench::procstat::machine()]);
    t.row(vec![
        "build".into(),
        if cfg!(debug_assertions) {
            "debug profile (figures are not representative)".into()
        } else {
            "release profile".into()
        },
    ]);
    t.row(vec![
        "load average when the last benchmark started".into(),
        watchpool_bench::procstat::load_average(),
    ]);
    Section {
        id: "machine".into(),
        tables: vec![t],
        command: format!("{RUN} all --out docs/performance.md"),
    }
}

async fn run_idle(bench: &Bench, a: &IdleArgs) -> Result<Section, BenchError> {
    let opts = idle::IdleOpts {
        objects: a.objects,
        duration: Duration::from_secs(a.duration),
    };
    let r = idle::run(bench, &opts).await?;
    Ok(idle::section(
        &opts,
        &r,
        &format!(
            "{RUN} idle --objects {} --duration {}",
            a.objects, a.duration
        ),
    ))
}

async fn run_throughput(bench: &Bench, a: &ThroughputArgs) -> Result<Section, BenchError> {
    let opts = throughput::ThroughputOpts {
        events: a.events,
        objects: a.objects,
        rounds: a.rounds,
        ..Default::default()
    };
    let r = throughput::run(bench, &opts).await?;
    Ok(throughput::section(
        &opts,
        &r,
        &format!(
            "{RUN} throughput --events {} --objects {} --rounds {}",
            a.events, a.objects, a.rounds
        ),
    ))
}

async fn run_memory(bench: &Bench, a: &MemoryArgs) -> Result<Section, BenchError> {
    let opts = memory::MemoryOpts {
        objects: a.objects,
        pods: !a.no_pods,
        ..Default::default()
    };
    let r = memory::run(bench, &opts).await?;
    Ok(memory::section(
        &opts,
        &r,
        &format!(
            "{RUN} memory --objects {}{}",
            a.objects,
            if a.no_pods { " --no-pods" } else { "" }
        ),
    ))
}

fn fault_opts(base: faults::FaultOpts, a: &FaultArgs) -> faults::FaultOpts {
    faults::FaultOpts {
        watches: a.watches.unwrap_or(base.watches),
        duration: a.duration.map_or(base.duration, Duration::from_secs),
        split_targets: a.split_targets,
        ..base
    }
}

async fn run_storm(bench: &Bench, a: &FaultArgs) -> Result<Section, BenchError> {
    let opts = fault_opts(faults::FaultOpts::storm(), a);
    let r = faults::storm(bench, &opts).await?;
    Ok(faults::storm_section(
        &r,
        &format!(
            "{RUN} reset-storm --watches {} --duration {}{}",
            opts.watches,
            opts.duration.as_secs(),
            if opts.split_targets {
                " --split-targets"
            } else {
                ""
            }
        ),
    ))
}

async fn run_outage(bench: &Bench, a: &FaultArgs) -> Result<Section, BenchError> {
    let opts = fault_opts(faults::FaultOpts::outage(), a);
    let r = faults::outage(bench, &opts).await?;
    Ok(faults::outage_section(
        &r,
        &format!(
            "{RUN} outage --watches {} --duration {}",
            opts.watches,
            opts.duration.as_secs()
        ),
    ))
}

async fn run_recovery(bench: &Bench, a: &RecoveryArgs) -> Result<Section, BenchError> {
    let opts = recovery::RecoveryOpts {
        samples: a.samples,
        idle: Duration::from_secs(a.idle),
        peer_cap: Duration::from_secs(a.peer_cap),
        objects: a.objects,
    };
    let r = recovery::run(bench, &opts).await?;
    Ok(recovery::section(
        &opts,
        &r,
        &format!(
            "{RUN} recovery --samples {} --idle {} --peer-cap {} --objects {}",
            a.samples, a.idle, a.peer_cap, a.objects
        ),
    ))
}

async fn run_scale(bench: &Bench, a: &ScaleArgs) -> Result<Section, BenchError> {
    let operator = match &a.operator {
        Some(p) => p.clone(),
        None => bench.exe.with_file_name("watchpool-operator"),
    };
    let opts = scale::ScaleOpts {
        policies: a.policies,
        watches_per_policy: a.watches,
        objects_per_watch: a.objects,
        writes_per_sec: a.writes_per_sec,
        duration: Duration::from_secs(a.duration),
        ..scale::ScaleOpts::issue(operator)
    };
    let r = scale::run(&opts).await?;
    Ok(scale::section(
        &opts,
        &r,
        &format!(
            "cargo build --release -p watchpool-operator && {RUN} scale --policies {} --watches {} --objects {} --duration {} --writes-per-sec {}",
            a.policies, a.watches, a.objects, a.duration, a.writes_per_sec
        ),
    ))
}

async fn run_budget(bench: &Bench, a: &BudgetArgs) -> Result<Section, BenchError> {
    let opts = budget::BudgetOpts {
        duration: Duration::from_secs(a.duration),
        writes_per_sec: a.writes_per_sec,
        copies: a.watches,
        budgets: a.budgets.clone(),
        size: a.size,
        ..Default::default()
    };
    let r = budget::run(bench, &opts).await?;
    Ok(budget::section(
        &opts,
        &r,
        &format!(
            "{RUN} cpu-budget --duration {} --writes-per-sec {} --watches {} --budgets {} --size {}",
            a.duration,
            a.writes_per_sec,
            a.watches,
            a.budgets
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            a.size
        ),
    ))
}

fn run_profile(lines: usize) -> Section {
    let r = decode::run(lines);
    decode::section(&r, &format!("{RUN} profile --lines {lines}"))
}
