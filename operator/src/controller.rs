//! The WatchPolicy controller. A reconcile is a pipeline of small steps:
//! [`decide`] (validate with the trust context and build the pool configuration — pure) →
//! [`PoolManager::apply`] (create / reconfigure / suspend / stop) → status, which the
//! policy's status worker writes from then on. Deletion runs behind the finalizer
//! `watchpool.dev/cleanup`: the pool is shut down before the object goes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, field, info, warn};
use watchpool_api::{BackoffConfig, ValidationContext, WatchPolicy};
use watchpool_engine::PoolId;
use watchpool_engine::backoff::Backoff;

use crate::metrics::{Metrics, ReasonLabels};
use crate::pools::{Applied, Decision, PoolManager};

/// The finalizer that guarantees a pool is torn down before its policy goes.
pub const FINALIZER: &str = "watchpool.dev/cleanup";

/// What a reconcile needs.
pub struct Context {
    /// The operator's client.
    pub client: Client,
    /// The pools.
    pub pools: Arc<PoolManager>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The trust rules.
    pub trust: Trust,
    /// Consecutive failed reconciles per policy, for the retry backoff.
    pub failures: Mutex<BTreeMap<PoolId, u32>>,
}

impl Context {
    /// A context with no failure recorded.
    pub fn new(
        client: Client,
        pools: Arc<PoolManager>,
        metrics: Arc<Metrics>,
        trust: Trust,
    ) -> Self {
        Self {
            client,
            pools,
            metrics,
            trust,
            failures: Mutex::new(BTreeMap::new()),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// Who may watch what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Policies in these namespaces may watch other namespaces or the whole cluster.
    pub trusted_namespaces: BTreeSet<String>,
    /// Secrets may be watched with their data.
    pub allow_secret_data: bool,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object has no namespace (WatchPolicy is namespaced, so the API server is broken).
    #[error("the policy has no namespace")]
    NoNamespace,
    /// Adding or removing the finalizer failed.
    #[error("finalizer step failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// A bounded category, used as metric label.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::NoNamespace => "NoNamespace",
            ReconcileError::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::AddFinalizer(_)
                | kube::runtime::finalizer::Error::RemoveFinalizer(_) => "FinalizerPatch",
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                _ => "Finalizer",
            },
        }
    }
}

/// Validates a policy with the trust context and decides what should run. Pure.
pub fn decide(policy: &WatchPolicy, trust: &Trust) -> Result<Decision, ReconcileError> {
    let namespace = policy.namespace().ok_or(ReconcileError::NoNamespace)?;
    let ctx = ValidationContext {
        trusted: trust.trusted_namespaces.contains(&namespace),
        namespace,
        allow_secret_data: trust.allow_secret_data,
    };
    Ok(match policy.spec.validate(&ctx) {
        Ok(config) if config.suspend => Decision::Suspend(config),
        Ok(config) => Decision::Run(config),
        Err(errors) => Decision::Invalid(errors.to_string()),
    })
}

/// Reconciles one policy: the root span of everything it causes.
pub async fn reconcile(
    policy: Arc<WatchPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!(
        parent: None,
        "reconcile",
        policy_namespace = %policy.namespace().unwrap_or_default(),
        policy = %policy.name_any(),
        trace_id = field::Empty,
    );
    if let Some(id) = crate::telemetry::trace_id(&span) {
        span.record("trace_id", field::display(id));
    }
    let started = Instant::now();
    let policy_ref = policy.clone();
    let result = reconcile_inner(policy, ctx.clone())
        .instrument(span.clone())
        .await;
    let label = match &result {
        Ok(Outcome::Invalid) => "invalid",
        Ok(_) => "success",
        Err(_) => "error",
    };
    ctx.metrics.observe_reconcile(label, started.elapsed());
    if result.is_ok()
        && let Ok(id) = pool_id(&policy_ref)
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&id);
    }
    result.map(|_| Action::await_change())
}

#[derive(Debug)]
enum Outcome {
    Applied,
    Invalid,
}

async fn reconcile_inner(
    policy: Arc<WatchPolicy>,
    ctx: Arc<Context>,
) -> Result<Outcome, ReconcileError> {
    let namespace = policy.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<WatchPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut outcome = Outcome::Applied;
    let outcome_ref = &mut outcome;
    finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            FinalizerEvent::Apply(policy) => {
                let id = pool_id(&policy)?;
                let decision = decide(&policy, &ctx.trust)?;
                if matches!(decision, Decision::Invalid(_)) {
                    *outcome_ref = Outcome::Invalid;
                }
                let kind = match &decision {
                    Decision::Run(_) => "run",
                    Decision::Suspend(_) => "suspend",
                    Decision::Invalid(_) => "invalid",
                };
                let applied = ctx.pools.apply(&policy, id, decision).await;
                if applied != Applied::Unchanged {
                    info!(decision = kind, applied = ?applied, generation = policy.metadata.generation, "policy applied");
                }
                Ok(Action::await_change())
            }
            FinalizerEvent::Cleanup(policy) => {
                let id = pool_id(&policy)?;
                ctx.pools.remove(&id).await;
                info!("pool torn down; releasing the policy");
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))?;
    Ok(outcome)
}

fn pool_id(policy: &WatchPolicy) -> Result<PoolId, ReconcileError> {
    Ok(PoolId {
        namespace: policy.namespace().ok_or(ReconcileError::NoNamespace)?,
        name: policy.name_any(),
    })
}

/// Retries a failed reconcile after a delay that depends on the error category: API failures
/// soon, a broken object only when it changes.
pub fn error_policy(policy: Arc<WatchPolicy>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let category = error.category();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels { reason: category })
        .inc();
    warn!(
        policy_namespace = %policy.namespace().unwrap_or_default(),
        policy = %policy.name_any(),
        error = %error,
        source = ?std::error::Error::source(error).map(ToString::to_string),
        category,
        "reconcile failed"
    );
    match error {
        // A broken object: only a change can help.
        ReconcileError::NoNamespace => Action::await_change(),
        // The API server: retry with a per-policy backoff.
        ReconcileError::Finalizer(_) => {
            let failures = pool_id(&policy)
                .ok()
                .and_then(|id| {
                    let mut map = ctx.failures.lock().ok()?;
                    let n = map.entry(id).or_insert(0);
                    *n = n.saturating_add(1);
                    Some(*n)
                })
                .unwrap_or(1);
            Action::requeue(retry_delay(failures))
        }
    }
}

/// Server-side lifetime of each WatchPolicy watch request, in seconds.
const OWN_WATCH_TIMEOUT_SECS: u32 = 20;

/// 1 s after the first failure, doubling up to 5 minutes.
pub fn retry_delay(consecutive_failures: u32) -> Duration {
    Backoff::new(&BackoffConfig {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(300),
        factor: 2.0,
        jitter: 0.0,
        ..BackoffConfig::default()
    })
    .nominal_delay(consecutive_failures.max(1))
}

/// Runs the controller until `stop` is cancelled; `synced` is called once the WatchPolicy
/// watch has listed everything.
pub async fn run(
    ctx: Arc<Context>,
    stop: CancellationToken,
    synced: impl FnOnce() + Send + 'static,
) {
    let api: Api<WatchPolicy> = Api::all(ctx.client.clone());
    // timeoutSeconds 20: kube-runtime gives up on a stream silent for timeout + 5 s, so a
    // half-open connection under the operator's own watch is rebuilt within 25 s.
    let controller = Controller::new(
        api,
        watcher::Config::default()
            .any_semantic()
            .timeout(OWN_WATCH_TIMEOUT_SECS),
    );
    let store = controller.store();
    // The store's readiness signal wakes only its last waiter (the controller's own), so poll it.
    let sync_task = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    synced();
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    });
    let stopping = stop.clone();
    controller
        .graceful_shutdown_on(async move { stopping.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .instrument(Span::none())
        .await;
    sync_task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(4), Duration::from_secs(8));
        assert_eq!(retry_delay(50), Duration::from_secs(300));
    }

    fn policy(namespace: &str, targets: serde_json::Value) -> WatchPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "watchpool.dev/v1alpha1",
            "kind": "WatchPolicy",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"targets": targets}
        }))
        .unwrap()
    }

    fn trust(namespaces: &[&str]) -> Trust {
        Trust {
            trusted_namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            allow_secret_data: false,
        }
    }

    #[test]
    fn trust_decides_whether_other_namespaces_may_be_watched() {
        let p = policy(
            "team-a",
            serde_json::json!([{"apiVersion": "v1", "kind": "Pod", "namespaces": ["team-b"]}]),
        );
        match decide(&p, &trust(&["ops"])).unwrap() {
            Decision::Invalid(message) => assert!(message.contains("team-b"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(&p, &trust(&["team-a"])).unwrap(),
            Decision::Run(_)
        ));
    }

    #[test]
    fn secrets_are_metadata_only_unless_allowed_and_suspend_is_honoured() {
        let p = policy(
            "a",
            serde_json::json!([{"apiVersion": "v1", "kind": "Secret"}]),
        );
        let Decision::Run(config) = decide(&p, &trust(&[])).unwrap() else {
            panic!()
        };
        assert!(config.targets[0].metadata_only);
        let allowed = Trust {
            allow_secret_data: true,
            ..trust(&[])
        };
        let Decision::Run(config) = decide(&p, &allowed).unwrap() else {
            panic!()
        };
        assert!(!config.targets[0].metadata_only);
        let mut p = p;
        p.spec.suspend = true;
        assert!(matches!(
            decide(&p, &trust(&[])).unwrap(),
            Decision::Suspend(_)
        ));
    }
}
