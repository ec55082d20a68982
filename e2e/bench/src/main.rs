//! `watchpool-bench`: watchpool side by side with kube-runtime, against the kube-emulator.
//!
//! ```text
//! cargo run --release -p watchpool-bench -- all --out docs/performance.md
//! cargo run --release -p watchpool-bench -- throughput --events 20000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use watchpool_bench::BenchError;
use watchpool_bench::driver::Bench;
use watchpool_bench::report::{Section, write_section};
use watchpool_bench::scenarios::throughput;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmarks of watchpool side by side with kube-runtime's watcher")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Write the result tables into this Markdown file (their section is replaced).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Events per second through a pool vs a bare watcher (issue 7 §2).
    Throughput {
        #[command(flatten)]
        common: Common,
        /// Events per burst.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// ConfigMaps per namespace.
        #[arg(long, default_value_t = 500)]
        objects: usize,
        /// Rounds per side.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
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
        command => run_parent(command),
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

fn run_parent(command: Cmd) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Io)?;
    let bench = Bench::current()?;
    runtime.block_on(async move {
        let (sections, out) = match command {
            Cmd::Throughput {
                common,
                events,
                objects,
                rounds,
            } => {
                let opts = throughput::ThroughputOpts {
                    events,
                    objects,
                    rounds,
                    ..Default::default()
                };
                let results = throughput::run(&bench, &opts).await?;
                let cmd = format!(
                    "cargo run --release -p watchpool-bench -- throughput --events {events} --objects {objects} --rounds {rounds}"
                );
                (vec![throughput::section(&opts, &results, &cmd)], common.out)
            }
            Cmd::PoolChild { .. } | Cmd::PeerChild { .. } => (Vec::new(), None),
        };
        emit(&sections, out.as_deref())
    })
}

fn emit(sections: &[Section], out: Option<&std::path::Path>) -> Result<(), BenchError> {
    for s in sections {
        s.print();
        if let Some(path) = out {
            write_section(path, s)?;
        }
    }
    Ok(())
}
