//! The watchpool operator: reconciles WatchPolicies into watch pools, writes their status,
//! publishes Events and metrics, exports traces, and runs pools only while it leads.

pub mod admin;
pub mod args;
pub mod controller;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod pools;
pub mod run;
pub mod status;
pub mod telemetry;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use run::run;

/// Build facts, from `build.rs`.
pub mod build {
    /// Crate version.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// Short git commit, or `unknown`.
    pub const GIT_COMMIT: &str = env!("WATCHPOOL_GIT_COMMIT");
    /// `rustc --version` of the build.
    pub const RUSTC: &str = env!("WATCHPOOL_RUSTC_VERSION");
    /// What `--version` prints.
    pub const VERSION_LINE: &str = concat!(
        env!("CARGO_PKG_VERSION"),
        " (git commit ",
        env!("WATCHPOOL_GIT_COMMIT"),
        ", ",
        env!("WATCHPOOL_RUSTC_VERSION"),
        ")"
    );
}

/// Parses the command line and runs the chosen subcommand. Exit codes: 0 success, 1 runtime
/// failure, 2 invalid command line or configuration.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    match cli.command.unwrap_or(args::Command::Run) {
        args::Command::Crd => {
            print!("{}", watchpool_api::crd_yaml());
            ExitCode::SUCCESS
        }
        args::Command::Version => {
            println!("watchpool-operator {}", build::VERSION);
            println!("git commit: {}", build::GIT_COMMIT);
            println!("rustc: {}", build::RUSTC);
            ExitCode::SUCCESS
        }
        args::Command::Run => {
            let config = match cli.run.validate() {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `error: cause: cause` on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
