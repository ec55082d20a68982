//! The pool manager: one entry per WatchPolicy, holding its pool (when one should run) and a
//! status worker task. The worker is the only writer of the policy's status: it follows what
//! the controller decided and the pool's health, derives the status, publishes Events on
//! state transitions, and writes by server-side apply when something a user cares about
//! changed, otherwise at most once per status interval.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};
use watchpool_api::{PolicyConfig, WatchPolicy, WatchPolicyStatus};
use watchpool_engine::{Pool, PoolHandle, PoolHealth, PoolId, PoolOptions, WatchKey};

use crate::events::{self, Notice, RateLimiter};
use crate::metrics::{Metrics, PolicyLabels};
use crate::status::{self, Phase, WriteNeed};

/// Field manager of every status write.
pub const FIELD_MANAGER: &str = "watchpool-operator";

/// What the controller decided for one policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run (or keep running) a pool with this configuration.
    Run(PolicyConfig),
    /// No pool: `spec.suspend` is true.
    Suspend(PolicyConfig),
    /// No pool: the spec is invalid (the validation messages).
    Invalid(String),
}

/// What [`PoolManager::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new pool was started.
    Created,
    /// The running pool got the new configuration.
    Reconfigured,
    /// The pool was stopped (suspended or invalid).
    Stopped,
    /// Nothing to do.
    Unchanged,
}

#[derive(Debug, Clone)]
struct Desired {
    generation: Option<i64>,
    phase: Phase,
    health: Option<watch::Receiver<PoolHealth>>,
}

struct Entry {
    pool: Option<PoolHandle>,
    config: Option<PolicyConfig>,
    desired: watch::Sender<Desired>,
    worker: JoinHandle<()>,
}

/// Shared settings of the status workers.
#[derive(Clone)]
pub struct StatusSettings {
    /// Shortest interval between counter-only writes.
    pub interval: Duration,
    /// Events publisher.
    pub recorder: Recorder,
}

/// Runs the pools and their status workers.
pub struct PoolManager {
    client: Client,
    settings: StatusSettings,
    metrics: Arc<Metrics>,
    entries: Mutex<BTreeMap<PoolId, Entry>>,
}

impl std::fmt::Debug for PoolManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolManager").finish_non_exhaustive()
    }
}

/// One watch in `/debug/pools`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DebugWatch {
    /// Target apiVersion.
    pub api_version: String,
    /// Target kind.
    pub kind: String,
    /// Namespace watched; `""` when cluster-wide.
    pub namespace: String,
    /// Target state.
    pub state: String,
    /// Objects in the cache.
    pub count: u64,
    /// Digest of the cached (uid, resourceVersion) pairs.
    pub digest: String,
}

/// One policy in `/debug/pools`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DebugPolicy {
    /// Policy namespace.
    pub namespace: String,
    /// Policy name.
    pub name: String,
    /// `Running`, `Suspended` or `InvalidSpec`.
    pub phase: String,
    /// The pool's watches.
    pub watches: Vec<DebugWatch>,
}

impl PoolManager {
    /// A manager with no pool.
    pub fn new(client: Client, settings: StatusSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            settings,
            metrics,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Applies the controller's decision for a policy: starts, reconfigures or stops its pool,
    /// and tells its status worker.
    pub async fn apply(&self, policy: &WatchPolicy, id: PoolId, decision: Decision) -> Applied {
        let generation = policy.metadata.generation;
        let mut stopped = None;
        let applied;
        {
            let Ok(mut entries) = self.entries.lock() else {
                return Applied::Unchanged;
            };
            let entry = entries
                .entry(id.clone())
                .or_insert_with(|| self.new_entry(policy, &id));
            let (phase, health) = match decision {
                Decision::Run(config) => {
                    if let Some(pool) = &entry.pool {
                        if entry.config.as_ref() == Some(&config) {
                            applied = Applied::Unchanged;
                        } else {
                            tracing::Span::none().in_scope(|| pool.reconfigure(config.clone()));
                            entry.config = Some(config);
                            applied = Applied::Reconfigured;
                        }
                    } else {
                        // Outside the reconcile span, for the same reason as the status worker.
                        let pool = tracing::Span::none().in_scope(|| {
                            Pool::spawn(
                                self.client.clone(),
                                id.clone(),
                                config.clone(),
                                PoolOptions::default(),
                            )
                        });
                        self.metrics.pools.insert(id.clone(), pool.health());
                        entry.pool = Some(pool);
                        entry.config = Some(config);
                        applied = Applied::Created;
                    }
                    (Phase::Running, entry.pool.as_ref().map(PoolHandle::health))
                }
                Decision::Suspend(config) => {
                    stopped = entry.pool.take();
                    entry.config = None;
                    applied = if stopped.is_some() {
                        Applied::Stopped
                    } else {
                        Applied::Unchanged
                    };
                    (
                        Phase::Suspended(watchpool_engine::pool::watch_keys(&config)),
                        None,
                    )
                }
                Decision::Invalid(message) => {
                    stopped = entry.pool.take();
                    entry.config = None;
                    applied = if stopped.is_some() {
                        Applied::Stopped
                    } else {
                        Applied::Unchanged
                    };
                    (Phase::Invalid(message), None)
                }
            };
            if stopped.is_some() {
                self.metrics.pools.remove(&id);
            }
            entry.desired.send_if_modified(|d| {
                let changed = d.generation != generation
                    || d.phase != phase
                    || d.health.is_some() != health.is_some();
                if changed || applied == Applied::Created {
                    *d = Desired {
                        generation,
                        phase,
                        health,
                    };
                    true
                } else {
                    false
                }
            });
        }
        if let Some(pool) = stopped {
            shutdown_pool(pool).await;
        }
        applied
    }

    /// Stops a policy's pool and status worker, and forgets its metrics. Returns once the
    /// pool has shut down.
    pub async fn remove(&self, id: &PoolId) {
        let entry = self.entries.lock().ok().and_then(|mut e| e.remove(id));
        self.metrics.forget_policy(id);
        if let Some(entry) = entry {
            entry.worker.abort();
            if let Some(pool) = entry.pool {
                shutdown_pool(pool).await;
            }
        }
    }

    /// Stops every pool and worker (leadership lost, or shutdown).
    pub async fn shutdown_all(&self) {
        let entries: Vec<(PoolId, Entry)> = match self.entries.lock() {
            Ok(mut e) => std::mem::take(&mut *e).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        let mut pools = Vec::new();
        for (id, entry) in entries {
            entry.worker.abort();
            self.metrics.forget_policy(&id);
            if let Some(pool) = entry.pool {
                pools.push(shutdown_pool(pool));
            }
        }
        futures::future::join_all(pools).await;
    }

    /// Number of pools running.
    pub fn running(&self) -> usize {
        self.entries
            .lock()
            .map(|e| e.values().filter(|e| e.pool.is_some()).count())
            .unwrap_or(0)
    }

    /// The state of every policy, for `/debug/pools`.
    pub fn debug(&self) -> Vec<DebugPolicy> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|(id, entry)| {
                let desired = entry.desired.borrow();
                let phase = match &desired.phase {
                    Phase::Running => "Running",
                    Phase::Suspended(_) => "Suspended",
                    Phase::Invalid(_) => "InvalidSpec",
                };
                let mut watches = Vec::new();
                if let Some(pool) = &entry.pool {
                    let health = pool.health().borrow().clone();
                    let states: BTreeMap<&WatchKey, &str> = health
                        .targets
                        .iter()
                        .map(|t| (&t.key, t.state.as_str()))
                        .collect();
                    let caches = pool.caches();
                    let mut seen = BTreeSet::new();
                    for cache in &caches {
                        seen.insert(cache.key.clone());
                        watches.push(DebugWatch {
                            api_version: cache.key.target.api_version.clone(),
                            kind: cache.key.target.kind.clone(),
                            namespace: cache.key.namespace.clone().unwrap_or_default(),
                            state: states
                                .get(&cache.key)
                                .copied()
                                .unwrap_or("Pending")
                                .to_owned(),
                            count: cache.count,
                            digest: cache.digest.clone(),
                        });
                    }
                    for t in health.targets.iter().filter(|t| !seen.contains(&t.key)) {
                        watches.push(DebugWatch {
                            api_version: t.key.target.api_version.clone(),
                            kind: t.key.target.kind.clone(),
                            namespace: t.key.namespace.clone().unwrap_or_default(),
                            state: t.state.as_str().to_owned(),
                            count: t.objects,
                            digest: watchpool_engine::digest(std::iter::empty()),
                        });
                    }
                }
                DebugPolicy {
                    namespace: id.namespace.clone(),
                    name: id.name.clone(),
                    phase: phase.to_owned(),
                    watches,
                }
            })
            .collect()
    }

    fn new_entry(&self, policy: &WatchPolicy, id: &PoolId) -> Entry {
        let (tx, rx) = watch::channel(Desired {
            generation: None,
            phase: Phase::Running,
            health: None,
        });
        let reference = ObjectReference {
            api_version: Some("watchpool.dev/v1alpha1".into()),
            kind: Some("WatchPolicy".into()),
            namespace: Some(id.namespace.clone()),
            name: Some(id.name.clone()),
            uid: policy.metadata.uid.clone(),
            ..Default::default()
        };
        let worker = StatusWorker {
            api: Api::namespaced(self.client.clone(), &id.namespace),
            id: id.clone(),
            reference,
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            last_written: policy.status.clone(),
        };
        // A root of its own: a child would keep the reconcile span open (and unexported) for the
        // life of the policy.
        let span = tracing::info_span!(parent: None, "status_worker", policy_namespace = %id.namespace, policy = %id.name);
        Entry {
            pool: None,
            config: None,
            desired: tx,
            worker: tokio::spawn(worker.run(rx).instrument(span)),
        }
    }
}

/// Longest wait for a pool's orderly shutdown; past it the pool's tasks are dropped anyway.
const POOL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

async fn shutdown_pool(pool: PoolHandle) {
    let id = pool.id().clone();
    if tokio::time::timeout(POOL_SHUTDOWN_TIMEOUT, pool.shutdown())
        .await
        .is_err()
    {
        warn!(policy_namespace = %id.namespace, policy = %id.name, "pool shutdown timed out; its tasks were dropped");
    }
}

struct StatusWorker {
    api: Api<WatchPolicy>,
    id: PoolId,
    reference: ObjectReference,
    settings: StatusSettings,
    metrics: Arc<Metrics>,
    last_written: Option<WatchPolicyStatus>,
}

impl StatusWorker {
    async fn run(mut self, mut desired_rx: watch::Receiver<Desired>) {
        let mut limiter = RateLimiter::per_minute(Instant::now());
        let mut ever_watching: BTreeSet<WatchKey> = BTreeSet::new();
        let mut previous_health = PoolHealth::default();
        let mut previous_phase: Option<Phase> = None;
        let mut last_write_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        let mut health_rx: Option<watch::Receiver<PoolHealth>> = None;
        // Wait for the first decision.
        if desired_rx.changed().await.is_err() {
            return;
        }
        loop {
            let desired = desired_rx.borrow_and_update().clone();
            // Follow the pool named by the decision, unless it has already ended.
            let wanted = desired.health.clone().filter(|h| h.has_changed().is_ok());
            let switch = match (&wanted, &health_rx) {
                (Some(a), Some(b)) => !a.same_channel(b),
                (None, None) => false,
                _ => true,
            };
            if switch {
                health_rx = wanted;
                previous_health = PoolHealth::default();
                ever_watching.clear();
            }
            let health = match health_rx.as_mut() {
                Some(rx) => rx.borrow_and_update().clone(),
                None => PoolHealth::default(),
            };

            // Events.
            let mut notices = Vec::new();
            if desired.phase == Phase::Running {
                notices.extend(events::transitions(&previous_health, &health));
            }
            if let Phase::Invalid(message) = &desired.phase
                && previous_phase.as_ref() != Some(&desired.phase)
            {
                notices.push(Notice {
                    warning: true,
                    reason: events::reason::INVALID_SPEC,
                    note: message.clone(),
                });
            }
            for notice in notices {
                if let Some(n) = limiter.admit(notice, Instant::now()) {
                    self.publish(n).await;
                }
            }
            for t in &health.targets {
                if t.state == watchpool_api::TargetState::Watching {
                    ever_watching.insert(t.key.clone());
                }
            }
            previous_health = health.clone();
            previous_phase = Some(desired.phase.clone());

            // Status.
            let previous_conditions = self
                .last_written
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let new = status::build(
                desired.generation,
                &desired.phase,
                &health,
                &|k| ever_watching.contains(k),
                &previous_conditions,
                SystemTime::now(),
            );
            let now = Instant::now();
            let due = match status::write_need(self.last_written.as_ref(), &new) {
                WriteNeed::None => None,
                WriteNeed::Now => Some(now),
                WriteNeed::Counters => {
                    Some(last_write_at.map_or(now, |t| t + self.settings.interval))
                }
                WriteNeed::Times => Some(
                    last_write_at
                        .map_or(now, |t| t + status::times_interval(self.settings.interval)),
                ),
            };
            let due = match (due, retry_at) {
                (Some(d), Some(r)) => Some(d.max(r)),
                (d, _) => d,
            };
            let mut deadline = None;
            if let Some(due) = due {
                if due <= now {
                    match self.write(&new).await {
                        Ok(()) => {
                            self.last_written = Some(new);
                            last_write_at = Some(Instant::now());
                            retry_at = None;
                        }
                        Err(e) => {
                            warn!(error = %e, "status write failed; retrying");
                            let r = Instant::now() + Duration::from_secs(1);
                            retry_at = Some(r);
                            deadline = Some(r);
                        }
                    }
                } else {
                    deadline = Some(due);
                }
            }

            let health_changed = async {
                match health_rx.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = desired_rx.changed() => if r.is_err() { return },
                ok = health_changed => if !ok {
                    // The pool is gone; wait for the next decision.
                    health_rx = None;
                },
                () = timer => {}
            }
        }
    }

    async fn write(&self, status: &WatchPolicyStatus) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "apiVersion": "watchpool.dev/v1alpha1",
            "kind": "WatchPolicy",
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api
            .patch_status(&self.id.name, &params, &Patch::Apply(&patch))
            .await?;
        self.metrics
            .status_writes
            .get_or_create(&PolicyLabels::from(&self.id))
            .inc();
        debug!("status written");
        Ok(())
    }

    async fn publish(&self, notice: Notice) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_owned(),
            note: Some(truncate(&notice.note, 1000)),
            action: "Watch".to_owned(),
            secondary: None,
        };
        match self
            .settings
            .recorder
            .publish(&event, &self.reference)
            .await
        {
            Ok(()) => info!(reason = notice.reason, "event published"),
            Err(e) => warn!(error = %e, reason = notice.reason, "cannot publish event"),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
