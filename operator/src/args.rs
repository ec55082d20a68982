//! Command line and environment: every flag has an environment twin, and the whole
//! configuration is checked once at start into a [`Config`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand, ValueEnum};

/// The command line of `watchpool-operator`.
#[derive(Debug, Parser)]
#[command(
    name = "watchpool-operator",
    about = "Reconciles WatchPolicies into resilient, CPU-bounded watch pools and reports their health.",
    version = crate::build::VERSION_LINE
)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run` (accepted before or after the subcommand).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the operator (the default).
    Run,
    /// Print the WatchPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Print the version, git commit and rustc version.
    Version,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of `run`, as given (before validation).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the admin server (/metrics, /livez, /readyz, /debug/pools).
    #[arg(
        long,
        env = "WATCHPOOL_ADMIN_ADDR",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub admin_addr: String,

    /// Namespaces whose policies may watch other namespaces or the whole cluster (comma
    /// separated). Default: the operator's own namespace.
    #[arg(
        long,
        env = "WATCHPOOL_TRUSTED_NAMESPACES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_namespaces: Vec<String>,

    /// Watch Secrets with their data when a policy asks for it (otherwise metadata only).
    #[arg(
        long,
        env = "WATCHPOOL_ALLOW_SECRET_DATA",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        global = true
    )]
    pub allow_secret_data: bool,

    /// Shortest interval between two status writes of a policy that only change counters
    /// (Go-style duration).
    #[arg(
        long,
        env = "WATCHPOOL_STATUS_INTERVAL",
        default_value = "10s",
        global = true
    )]
    pub status_interval: String,

    /// Run pools only while holding the leader Lease (for more than one replica).
    #[arg(
        long,
        env = "WATCHPOOL_LEADER_ELECTION",
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        global = true
    )]
    pub leader_election: bool,

    /// Name of the leader election Lease, in the operator's namespace.
    #[arg(
        long,
        env = "WATCHPOOL_LEASE_NAME",
        default_value = "watchpool-operator",
        global = true
    )]
    pub lease_name: String,

    /// Validity of the leader Lease after its last renewal (whole seconds, at least 2s).
    #[arg(
        long,
        env = "WATCHPOOL_LEASE_DURATION",
        default_value = "15s",
        global = true
    )]
    pub lease_duration: String,

    /// Log format.
    #[arg(
        long,
        env = "WATCHPOOL_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter, an EnvFilter directive (`info`, `watchpool_operator=debug,kube=warn`).
    #[arg(
        long,
        env = "WATCHPOOL_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,

    /// Longest time from SIGTERM to exit.
    #[arg(
        long,
        env = "WATCHPOOL_SHUTDOWN_TIMEOUT",
        default_value = "25s",
        global = true
    )]
    pub shutdown_timeout: String,

    /// The operator's own namespace (the Lease lives there; trusted by default).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", global = true)]
    pub namespace: String,

    /// This replica's identity in leader election and events. Default: the hostname.
    #[arg(long, env = "POD_NAME", global = true)]
    pub identity: Option<String>,
}

/// The validated configuration of `run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address of the admin server.
    pub admin_addr: SocketAddr,
    /// Policies in these namespaces may watch elsewhere.
    pub trusted_namespaces: BTreeSet<String>,
    /// Secrets may be watched with their data.
    pub allow_secret_data: bool,
    /// Shortest interval between counter-only status writes.
    pub status_interval: Duration,
    /// Leader election on.
    pub leader_election: bool,
    /// Lease name.
    pub lease_name: String,
    /// Lease validity.
    pub lease_duration: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_level: String,
    /// Longest time from SIGTERM to exit.
    pub shutdown_timeout: Duration,
    /// The operator's namespace.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
}

/// A flag or environment variable that does not hold a usable value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not a socket address.
    #[error("--admin-addr (WATCHPOOL_ADMIN_ADDR): {value:?} is not an address like 0.0.0.0:8080")]
    AdminAddr {
        /// What was given.
        value: String,
    },
    /// Not a duration, or out of bounds.
    #[error("{flag}: {value:?} {problem}")]
    Duration {
        /// Which flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Not a namespace name.
    #[error("{flag}: {value:?} is not a valid namespace name (DNS-1123 label)")]
    Namespace {
        /// Which flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// Not a valid Lease name or identity.
    #[error("{flag}: {value:?} {problem}")]
    Name {
        /// Which flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Not a valid log filter.
    #[error("--log-level (WATCHPOOL_LOG_LEVEL): {value:?} is not a valid filter directive")]
    LogLevel {
        /// What was given.
        value: String,
    },
}

impl RunArgs {
    /// Checks every value; the first problem is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let RunArgs {
            admin_addr,
            trusted_namespaces,
            allow_secret_data,
            status_interval,
            leader_election,
            lease_name,
            lease_duration,
            log_format,
            log_level,
            shutdown_timeout,
            namespace,
            identity,
        } = self;

        let admin_addr =
            admin_addr
                .trim()
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::AdminAddr {
                    value: admin_addr.clone(),
                })?;

        if !is_dns1123_label(&namespace) {
            return Err(ConfigError::Namespace {
                flag: "--namespace (POD_NAMESPACE)",
                value: namespace,
            });
        }
        let mut trusted = BTreeSet::new();
        for ns in trusted_namespaces
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if !is_dns1123_label(ns) {
                return Err(ConfigError::Namespace {
                    flag: "--trusted-namespaces (WATCHPOOL_TRUSTED_NAMESPACES)",
                    value: ns.to_owned(),
                });
            }
            trusted.insert(ns.to_owned());
        }
        if trusted.is_empty() {
            trusted.insert(namespace.clone());
        }

        let status_interval = duration_flag(
            "--status-interval (WATCHPOOL_STATUS_INTERVAL)",
            &status_interval,
            Duration::from_millis(100),
        )?;
        let lease_duration = duration_flag(
            "--lease-duration (WATCHPOOL_LEASE_DURATION)",
            &lease_duration,
            Duration::from_secs(2),
        )?;
        if lease_duration.subsec_nanos() != 0 {
            return Err(ConfigError::Duration {
                flag: "--lease-duration (WATCHPOOL_LEASE_DURATION)",
                value: format_duration(lease_duration),
                problem: "must be whole seconds".into(),
            });
        }
        let shutdown_timeout = duration_flag(
            "--shutdown-timeout (WATCHPOOL_SHUTDOWN_TIMEOUT)",
            &shutdown_timeout,
            Duration::from_millis(100),
        )?;

        if !is_dns1123_subdomain(&lease_name) {
            return Err(ConfigError::Name {
                flag: "--lease-name (WATCHPOOL_LEASE_NAME)",
                value: lease_name,
                problem: "is not a valid object name (DNS-1123 subdomain)",
            });
        }

        if tracing_subscriber::EnvFilter::builder()
            .parse(&log_level)
            .is_err()
        {
            return Err(ConfigError::LogLevel { value: log_level });
        }

        let identity = match identity
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        {
            Some(id) => id,
            None => hostname(),
        };
        if identity.len() > 253 {
            return Err(ConfigError::Name {
                flag: "--identity (POD_NAME)",
                value: identity,
                problem: "is longer than 253 characters",
            });
        }

        Ok(Config {
            admin_addr,
            trusted_namespaces: trusted,
            allow_secret_data,
            status_interval,
            leader_election,
            lease_name,
            lease_duration,
            log_format,
            log_level,
            shutdown_timeout,
            namespace,
            identity,
        })
    }
}

fn duration_flag(flag: &'static str, value: &str, min: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(value).map_err(|problem| ConfigError::Duration {
        flag,
        value: value.to_owned(),
        problem,
    })?;
    if d < min {
        return Err(ConfigError::Duration {
            flag,
            value: value.to_owned(),
            problem: format!("must be at least {}", format_duration(min)),
        });
    }
    Ok(d)
}

/// Parses a Go-style duration: one or more `<number><unit>` with units `ns`, `us`, `µs`, `ms`,
/// `s`, `m`, `h` (`1h30m`, `1.5s`, `800ms`). A bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("is not a duration (e.g. 10s, 1m30s)".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| "is missing a unit (ns, us, ms, s, m, h)".to_owned())?;
        if num_len == 0 {
            return Err("is not a duration (e.g. 10s, 1m30s)".into());
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| "is not a duration (e.g. 10s, 1m30s)".to_owned())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err("has an unknown unit (use ns, us, ms, s, m, h)".into()),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    if !total.is_finite() || total > 1e9 {
        return Err("is too large".into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the Go way for messages (`1.5s`, `250ms`, `2m0s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if d.as_secs() < 60 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "watchpool-operator".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["watchpool-operator"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().run.validate()
    }

    #[test]
    fn go_durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("800ms").unwrap(), Duration::from_millis(800));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn flags_after_the_run_subcommand_are_accepted() {
        let cli = Cli::try_parse_from([
            "watchpool-operator",
            "run",
            "--status-interval",
            "2s",
            "--trusted-namespaces",
            "ops,infra",
            "--leader-election",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Run));
        let config = cli.run.validate().unwrap();
        assert_eq!(config.status_interval, Duration::from_secs(2));
        assert!(config.leader_election);
        assert_eq!(
            config.trusted_namespaces.into_iter().collect::<Vec<_>>(),
            vec!["infra".to_owned(), "ops".to_owned()]
        );
    }

    #[test]
    fn the_charts_argument_list_parses() {
        let config = parse(&[
            "run",
            "--admin-addr=0.0.0.0:8080",
            "--trusted-namespaces=ops,infra",
            "--allow-secret-data",
            "--status-interval=10s",
            "--leader-election",
            "--lease-name=watchpool",
            "--lease-duration=15s",
            "--log-format=json",
            "--log-level=info",
            "--shutdown-timeout=25s",
        ])
        .unwrap();
        assert!(config.allow_secret_data);
        assert!(config.leader_election);
        assert_eq!(config.lease_name, "watchpool");
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.admin_addr, "0.0.0.0:8080".parse().unwrap());
        let off = parse(&["run", "--leader-election=false"]).unwrap();
        assert!(!off.leader_election);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["--status-interval", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--status-interval"), "{err}");
        let err = parse(&["--admin-addr", "localhost"]).unwrap_err();
        assert!(err.to_string().contains("--admin-addr"), "{err}");
        let err = parse(&["--trusted-namespaces", "Bad_NS"]).unwrap_err();
        assert!(err.to_string().contains("Bad_NS"), "{err}");
        let err = parse(&["--lease-duration", "1500ms"]).unwrap_err();
        assert!(err.to_string().contains("--lease-duration"), "{err}");
        let err = parse(&["--log-level", "info,=bad=[x"]).unwrap_err();
        assert!(err.to_string().contains("--log-level"), "{err}");
    }

    #[test]
    fn unknown_log_format_is_a_usage_error() {
        let err = Cli::try_parse_from(["watchpool-operator", "--log-format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
