//! `watchpool-operator run`: all the wiring in one place.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, Readiness};
use crate::args::Config;
use crate::controller::{self, Context, Trust};
use crate::leader::{self, LeaseSettings};
use crate::metrics::Metrics;
use crate::pools::{PoolManager, StatusSettings};
use crate::telemetry;

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Logging or tracing could not start.
    #[error("cannot start telemetry")]
    Telemetry(#[from] telemetry::TelemetryError),
    /// No Kubernetes client.
    #[error("cannot build the kubernetes client")]
    Client(#[from] watchpool_engine::client::ClientError),
    /// The admin address could not be bound.
    #[error("cannot listen on the admin address {addr}")]
    Admin {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leader election could not start.
    #[error("cannot start leader election")]
    Leader(#[from] leader::LeaderError),
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let Config {
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
    } = config;

    let telemetry = telemetry::init(log_format, &log_level)?;
    info!(
        version = crate::build::VERSION,
        git_commit = crate::build::GIT_COMMIT,
        rustc = crate::build::RUSTC,
        otlp = telemetry.otlp,
        identity = %identity,
        namespace = %namespace,
        "starting watchpool-operator"
    );

    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());

    let result = run_until_stopped(
        RunParts {
            admin_addr,
            trust: Trust {
                trusted_namespaces,
                allow_secret_data,
            },
            status_interval,
            leader_election,
            lease: LeaseSettings {
                namespace,
                name: lease_name,
                identity,
                duration: lease_duration,
            },
            shutdown_timeout,
        },
        stop,
    )
    .await;
    if let Err(e) = &result {
        error!(error = %crate::error_chain(e), "operator failed");
    }
    telemetry.shutdown(Duration::from_secs(2)).await;
    result
}

struct RunParts {
    admin_addr: std::net::SocketAddr,
    trust: Trust,
    status_interval: Duration,
    leader_election: bool,
    lease: LeaseSettings,
    shutdown_timeout: Duration,
}

async fn run_until_stopped(parts: RunParts, stop: CancellationToken) -> Result<(), RunError> {
    let RunParts {
        admin_addr,
        trust,
        status_interval,
        leader_election,
        lease,
        shutdown_timeout,
    } = parts;
    let metrics = Arc::new(Metrics::new(
        crate::build::VERSION,
        crate::build::GIT_COMMIT,
    ));
    let client =
        watchpool_engine::client::infer(&watchpool_engine::client::ClientOptions::default())
            .await?;
    // The operator's own WatchPolicy watch is kube-runtime's watcher, which re-watches at once
    // after an empty watch: its client carries the watch guard (same hardening otherwise).
    let controller_client =
        watchpool_engine::client::infer(&watchpool_engine::client::ClientOptions {
            watch_guard: true,
            ..watchpool_engine::client::ClientOptions::default()
        })
        .await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "watchpool-operator".into(),
            instance: Some(lease.identity.clone()),
        },
    );
    let pools = Arc::new(PoolManager::new(
        client.clone(),
        StatusSettings {
            interval: status_interval,
            recorder,
        },
        metrics.clone(),
    ));
    let readiness = Arc::new(Readiness::default());

    let listener = admin::bind(admin_addr)
        .await
        .map_err(|source| RunError::Admin {
            addr: admin_addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(admin_addr);
    info!(addr = %bound, "admin server listening");
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(
        listener,
        AdminState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            pools: pools.clone(),
        },
        admin_stop.clone(),
    ));

    // Without leader election this replica always leads; the sender lives for the whole run.
    let (_solo, solo_rx) = watch::channel(Some(true));
    let (leadership, mut leading) = if leader_election {
        let l = leader::start(client.clone(), lease.clone()).await?;
        let rx = l.leading.clone();
        (Some(l), rx)
    } else {
        (None, solo_rx)
    };

    let ctx = Arc::new(Context::new(
        controller_client,
        pools.clone(),
        metrics.clone(),
        trust,
    ));

    // Lead while allowed; stand by otherwise.
    'outer: loop {
        // Wait until this replica leads.
        loop {
            let state = *leading.borrow_and_update();
            if let Some(l) = state {
                readiness.leadership_known.store(true, Ordering::SeqCst);
                readiness.leading.store(l, Ordering::SeqCst);
                metrics.leader.set(i64::from(l));
                if l {
                    break;
                }
            }
            tokio::select! {
                () = stop.cancelled() => break 'outer,
                r = leading.changed() => if r.is_err() { break 'outer },
            }
        }
        info!("leading: running the controller");
        readiness.synced.store(false, Ordering::SeqCst);
        let controller_stop = stop.child_token();
        let synced_flag = readiness.clone();
        let mut controller = tokio::spawn(controller::run(
            ctx.clone(),
            controller_stop.clone(),
            move || {
                synced_flag.synced.store(true, Ordering::SeqCst);
                info!("watchpolicy watch synced");
            },
        ));
        let lost = loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break false,
                r = leading.changed() => {
                    if r.is_err() || *leading.borrow_and_update() != Some(true) {
                        break true;
                    }
                }
                r = &mut controller => {
                    warn!(result = ?r.err(), "controller ended unexpectedly; restarting it");
                    controller = tokio::spawn(controller::run(ctx.clone(), controller_stop.clone(), || {}));
                }
            }
        };
        // Lost the lease or shutting down: stop pools at once, then the controller.
        controller.abort();
        readiness.leading.store(false, Ordering::SeqCst);
        metrics.leader.set(0);
        if lost {
            warn!("leadership lost: stopping every pool");
            pools.shutdown_all().await;
            continue;
        }
        break;
    }

    info!(timeout = ?shutdown_timeout, "shutting down");
    let shutdown = async {
        pools.shutdown_all().await;
        if let Some(l) = leadership {
            l.release(shutdown_timeout / 2).await;
        }
        admin_stop.cancel();
        let _ = admin_task.await;
    };
    if tokio::time::timeout(shutdown_timeout, shutdown)
        .await
        .is_err()
    {
        warn!("shutdown timed out");
    }
    info!("stopped");
    Ok(())
}

fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => info!("SIGTERM received"),
                        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        stop.cancel();
    });
}
