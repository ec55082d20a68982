//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager). Publishes
//! `None` until this replica knows whether it leads, then `Some(leading)`. Dropping the
//! channel's receivers or calling [`Leadership::release`] frees the Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created.
    #[error("cannot set up the leader lease")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
}

/// A running leader election.
#[derive(Debug)]
pub struct Leadership {
    /// `None` until known, then whether this replica leads.
    pub leading: watch::Receiver<Option<bool>>,
    stop: CancellationToken,
    forwarder: JoinHandle<()>,
}

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// Validity after the last renewal.
    pub duration: Duration,
}

/// Starts competing for the Lease.
pub async fn start(client: Client, settings: LeaseSettings) -> Result<Leadership, LeaderError> {
    let duration = settings.duration.as_secs().max(2);
    let grace = (duration / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &settings.name)
        .with_namespace(&settings.namespace)
        .with_parameters(LeaseParams::new(settings.identity.clone(), duration, grace))
        .build()
        .await
        .map_err(LeaderError::Lease)?;
    let (tx, rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let forwarder = tokio::spawn(forward(manager, client, settings, tx, stop.clone()));
    Ok(Leadership {
        leading: rx,
        stop,
        forwarder,
    })
}

async fn forward(
    manager: LeaseManager,
    client: Client,
    settings: LeaseSettings,
    tx: watch::Sender<Option<bool>>,
    stop: CancellationToken,
) {
    let (mut lease_rx, lease_task) = manager.watch().await;
    // A standby never hears from the manager until the leader goes: learn from the Lease itself
    // whether someone else holds it, so that readiness does not wait for a whole lease period.
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let held_elsewhere = match api.get_opt(&settings.name).await {
        Ok(Some(lease)) => lease.spec.as_ref().is_some_and(|spec| {
            let holder = spec.holder_identity.as_deref().unwrap_or("");
            let valid_until = spec.renew_time.as_ref().map(|t| {
                t.0 + Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
                )
            });
            !holder.is_empty()
                && holder != settings.identity
                && valid_until.is_some_and(|t| t > jiff::Timestamp::now())
        }),
        Ok(None) => false,
        Err(e) => {
            warn!(error = %e, "cannot read the leader lease");
            false
        }
    };
    if held_elsewhere && !*lease_rx.borrow() {
        tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(false);
                true
            } else {
                false
            }
        });
        info!(lease = %settings.name, "another replica leads; standing by");
    }
    let fallback = tokio::time::sleep(settings.duration + Duration::from_secs(1));
    tokio::pin!(fallback);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = lease_rx.changed() => {
                if r.is_err() {
                    warn!("leader election ended");
                    tx.send_replace(Some(false));
                    break;
                }
                let leading = *lease_rx.borrow_and_update();
                info!(leading, lease = %settings.name, "leadership changed");
                tx.send_replace(Some(leading));
            }
            () = &mut fallback, if tx.borrow().is_none() => {
                tx.send_replace(Some(*lease_rx.borrow()));
            }
        }
    }
    // Closing the receiver makes the manager release the Lease and end.
    drop(lease_rx);
    match lease_task.await {
        Ok(Ok(_)) => info!(lease = %settings.name, "leader lease released"),
        Ok(Err(e)) => warn!(error = %e, "cannot release the leader lease"),
        Err(e) => warn!(error = %e, "leader election task failed"),
    }
    tx.send_replace(Some(false));
}

impl Leadership {
    /// Stops competing and releases the Lease if held; waits at most `timeout`.
    pub async fn release(self, timeout: Duration) {
        self.stop.cancel();
        let _ = tokio::time::timeout(timeout, self.forwarder).await;
    }
}
