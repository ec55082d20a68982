//! `watchpool-sandbox`: the operator at work on an embedded API server, with the faults of a
//! cloud load balancer, in one command (`cargo run -p watchpool-e2e --bin watchpool-sandbox`).
//! See [`watchpool_e2e::sandbox`].

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use watchpool_e2e::sandbox::{self, SandboxOptions};

fn duration(s: &str) -> Result<Duration, String> {
    s.parse::<watchpool_api::GoDuration>()
        .map(Duration::from)
        .map_err(|e| e.to_string())
}

/// Starts an emulator, the CRD, the operator and the example policies, runs a workload while
/// cutting connections, prints a live table and a summary.
#[derive(Debug, Parser)]
#[command(name = "watchpool-sandbox", version)]
struct Args {
    /// How long the workload and the faults run (Go duration).
    #[arg(long, default_value = "60s", value_parser = duration)]
    duration: Duration,
    /// Number of policies: the examples, repeated or cut to this number (0: each example once).
    #[arg(long, default_value_t = 0)]
    policies: usize,
    /// Objects the workload keeps alive.
    #[arg(long, default_value_t = 200)]
    objects: usize,
    /// Time between two resets of every watch (Go duration).
    #[arg(long, default_value = "30s", value_parser = duration)]
    fault_interval: Duration,
    /// Time between two tables (Go duration).
    #[arg(long, default_value = "2s", value_parser = duration)]
    refresh: Duration,
    /// Print the kubeconfig (path and contents) so that your own kubectl can look around.
    #[arg(long)]
    print_kubeconfig: bool,
}

impl From<Args> for SandboxOptions {
    fn from(args: Args) -> Self {
        SandboxOptions {
            duration: args.duration,
            policies: args.policies,
            objects: args.objects,
            fault_interval: args.fault_interval,
            refresh: args.refresh,
            print_kubeconfig: args.print_kubeconfig,
            ..SandboxOptions::default()
        }
    }
}

async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn main() -> ExitCode {
    let options = SandboxOptions::from(Args::parse());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("watchpool-sandbox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sandbox::run(&options, interrupted())) {
        Ok(summary) => {
            print!("{}", summary.render());
            if summary.all_matched() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("watchpool-sandbox: {message}");
            ExitCode::FAILURE
        }
    }
}
