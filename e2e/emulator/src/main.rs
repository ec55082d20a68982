//! `kube-emulator`: serves the emulator until SIGINT/SIGTERM. Prints its URL as the first line
//! on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube_emulator::{Emulator, EmulatorConfig, FaultSpec};

/// An in-memory Kubernetes API server with fault injection.
#[derive(Debug, Parser)]
#[command(name = "kube-emulator", version)]
struct Args {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the emulator.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Bookmark interval, e.g. `5s`, `500ms`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    bookmark_interval: Duration,
    /// Events kept for watch resumption.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// A JSON file with a fault or an array of faults to add at start.
    #[arg(long)]
    faults: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Ok(kube_emulator::faults::bounded_secs(secs))
}

fn load_faults(path: &PathBuf) -> Result<Vec<FaultSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("invalid JSON in {}: {e}", path.display()))?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|i| {
            serde_json::from_value(i)
                .map_err(|e| format!("invalid fault in {}: {e}", path.display()))
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let faults = match args.faults.as_ref().map(load_faults).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let config = EmulatorConfig {
        listen: args.listen,
        bookmark_interval: args.bookmark_interval,
        history: args.history,
        ..EmulatorConfig::default()
    };
    let emu = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "kube-emulator: {e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            return ExitCode::from(1);
        }
    };
    for f in faults {
        emu.faults().add(f);
    }
    if let Some(path) = &args.kubeconfig
        && let Err(e) = emu.write_kubeconfig(path)
    {
        eprintln!("kube-emulator: {e}");
        return ExitCode::from(1);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", emu.url());
    let _ = out.flush();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-emulator: cannot install the SIGTERM handler: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emu.shutdown().await;
    ExitCode::SUCCESS
}
