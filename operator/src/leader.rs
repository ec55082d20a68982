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

/// What the Lease says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// The holder, `""` when free.
    holder: String,
    /// When the holder's claim runs out.
    valid_until: Option<jiff::Timestamp>,
}

async fn observe(api: &Api<Lease>, name: &str) -> Result<Observed, kube::Error> {
    let lease = api.get_opt(name).await?;
    let spec = lease.and_then(|l| l.spec).unwrap_or_default();
    let valid_until = spec.renew_time.as_ref().map(|t| {
        t.0 + Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        )
    });
    Ok(Observed {
        holder: spec.holder_identity.unwrap_or_default(),
        valid_until,
    })
}

/// Follows the lease manager, and while it says this replica leads, confirms it from the Lease
/// itself every sixth of the lease duration: a leader that cannot confirm its claim before
/// the claim runs out (API server unreachable, Lease taken) steps down at once, even though the
/// manager has not noticed yet, so that two replicas never run pools beyond the lease duration.
async fn forward(
    manager: LeaseManager,
    client: Client,
    settings: LeaseSettings,
    tx: watch::Sender<Option<bool>>,
    stop: CancellationToken,
) {
    let (mut lease_rx, lease_task) = manager.watch().await;
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let identity = settings.identity.clone();
    // A standby never hears from the manager until the leader goes: learn from the Lease itself
    // whether someone else holds it, so that readiness does not wait for a whole lease period.
    match observe(&api, &settings.name).await {
        Ok(o)
            if !o.holder.is_empty()
                && o.holder != identity
                && o.valid_until.is_some_and(|t| t > jiff::Timestamp::now()) =>
        {
            tx.send_if_modified(|v| {
                let unknown = v.is_none();
                if unknown {
                    *v = Some(false);
                }
                unknown
            });
            info!(lease = %settings.name, holder = %o.holder, "another replica leads; standing by");
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the leader lease"),
    }

    let check_every = (settings.duration / 6).max(Duration::from_millis(250));
    let mut ticker = tokio::time::interval(check_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fallback = tokio::time::sleep(settings.duration + Duration::from_secs(1));
    tokio::pin!(fallback);
    let mut manager_leading = *lease_rx.borrow_and_update();
    let mut confirmed_until: Option<jiff::Timestamp> = None;
    // Step down a little before the claim runs out, so that a standby taking over at the
    // expiry never overlaps (renewals come a third of the lease before expiry).
    let margin = settings.duration / 12;
    let publish = |manager_leading: bool, confirmed_until: Option<jiff::Timestamp>, why: &str| {
        let leading =
            manager_leading && confirmed_until.is_some_and(|t| t > jiff::Timestamp::now() + margin);
        // Stay unknown until either the manager or the Lease has said something.
        if !leading && tx.borrow().is_none() && !manager_leading {
            return;
        }
        tx.send_if_modified(|v| {
            let changed = *v != Some(leading);
            if changed {
                info!(leading, lease = %settings.name, why, "leadership changed");
                *v = Some(leading);
            }
            changed
        });
    };
    loop {
        let step_down_at = confirmed_until.filter(|_| manager_leading).map(|t| {
            let left = jiff::Timestamp::now().duration_until(t).unsigned_abs();
            let left = if t > jiff::Timestamp::now() {
                left
            } else {
                Duration::ZERO
            };
            tokio::time::Instant::now() + left.saturating_sub(margin)
        });
        let step_down = async {
            match step_down_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = step_down => {
                publish(manager_leading, confirmed_until, "lease claim running out");
                // Until a new confirmation arrives, only the ticker wakes this loop.
                if confirmed_until.is_none_or(|t| t <= jiff::Timestamp::now() + margin) {
                    confirmed_until = None;
                }
            }
            r = lease_rx.changed() => {
                if r.is_err() {
                    warn!("leader election ended");
                    break;
                }
                manager_leading = *lease_rx.borrow_and_update();
                if manager_leading {
                    // Confirm before leading.
                    confirmed_until = match observe(&api, &settings.name).await {
                        Ok(o) if o.holder == identity => o.valid_until,
                        _ => None,
                    };
                } else {
                    confirmed_until = None;
                }
                publish(manager_leading, confirmed_until, "lease manager");
            }
            _ = ticker.tick(), if manager_leading => {
                match observe(&api, &settings.name).await {
                    Ok(o) if o.holder == identity => confirmed_until = o.valid_until,
                    Ok(o) => {
                        warn!(holder = %o.holder, "the leader lease is held by another replica");
                        confirmed_until = None;
                    }
                    // Keep the last confirmation: it runs out by itself.
                    Err(e) => warn!(error = %e, "cannot confirm the leader lease"),
                }
                publish(manager_leading, confirmed_until, "lease check");
            }
            () = &mut fallback, if tx.borrow().is_none() => {
                tx.send_replace(Some(false));
            }
        }
    }
    tx.send_replace(Some(false));
    // Closing the receiver makes the manager release the Lease and end.
    drop(lease_rx);
    match lease_task.await {
        Ok(Ok(_)) => info!(lease = %settings.name, "leader lease released"),
        Ok(Err(e)) => warn!(error = %e, "cannot release the leader lease"),
        Err(e) => warn!(error = %e, "leader election task failed"),
    }
}

impl Leadership {
    /// Stops competing and releases the Lease if held; waits at most `timeout`.
    pub async fn release(self, timeout: Duration) {
        self.stop.cancel();
        let _ = tokio::time::timeout(timeout, self.forwarder).await;
    }
}
