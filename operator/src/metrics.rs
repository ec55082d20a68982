//! Prometheus metrics (OpenMetrics text). Controller metrics are ordinary counters; the watch
//! and pool metrics are read from the pools' health snapshots at scrape time by a collector,
//! so they carry the engine's cumulative counters as they are, and the series of a deleted
//! policy disappear with its pool. Labels are policy namespace/name, group/version/kind,
//! state, reason, type: never anything per watched object.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use watchpool_api::TargetState;
use watchpool_engine::{PoolHealth, PoolId};

/// Labels of a policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// Namespace of the WatchPolicy.
    pub policy_namespace: String,
    /// Name of the WatchPolicy.
    pub policy: String,
}

impl From<&PoolId> for PolicyLabels {
    fn from(id: &PoolId) -> Self {
        Self {
            policy_namespace: id.namespace.clone(),
            policy: id.name.clone(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    policy_namespace: String,
    policy: String,
    group: String,
    version: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchTypeLabels {
    policy_namespace: String,
    policy: String,
    group: String,
    version: String,
    kind: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchReasonLabels {
    policy_namespace: String,
    policy: String,
    group: String,
    version: String,
    kind: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    policy_namespace: String,
    policy: String,
    state: &'static str,
}

/// Label of `watchpool_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success`, `invalid` or `error`.
    pub result: &'static str,
}

/// Label of `watchpool_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The error category.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    git_commit: String,
}

/// The health channels of the running pools, read at scrape time.
#[derive(Debug, Default)]
pub struct PoolHealthSources {
    pools: Mutex<BTreeMap<PoolId, watch::Receiver<PoolHealth>>>,
}

impl PoolHealthSources {
    /// Starts exporting a pool's health.
    pub fn insert(&self, id: PoolId, health: watch::Receiver<PoolHealth>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.insert(id, health);
        }
    }

    /// Stops exporting a pool's health (its series disappear).
    pub fn remove(&self, id: &PoolId) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.remove(id);
        }
    }

    fn snapshot(&self) -> Vec<(PoolId, PoolHealth)> {
        match self.pools.lock() {
            Ok(pools) => pools
                .iter()
                .map(|(id, rx)| (id.clone(), rx.borrow().clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[derive(Debug)]
struct PoolCollector {
    sources: Arc<PoolHealthSources>,
}

type FloatCounter = Counter<f64, AtomicU64>;

impl prometheus_client::collector::Collector for PoolCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let events = Family::<WatchTypeLabels, Counter>::default();
        let reconnects = Family::<WatchLabels, Counter>::default();
        let relists = Family::<WatchLabels, Counter>::default();
        let errors = Family::<WatchReasonLabels, Counter>::default();
        let targets = Family::<StateLabels, Gauge>::default();
        let objects = Family::<WatchLabels, Gauge>::default();
        let cpu = Family::<PolicyLabels, FloatCounter>::default();
        let throttled_seconds = Family::<PolicyLabels, FloatCounter>::default();
        let throttled = Family::<PolicyLabels, Gauge>::default();

        for (id, health) in self.sources.snapshot() {
            let policy = PolicyLabels::from(&id);
            for state in TargetState::ALL {
                let n = health.targets.iter().filter(|t| t.state == state).count();
                targets
                    .get_or_create(&StateLabels {
                        policy_namespace: id.namespace.clone(),
                        policy: id.name.clone(),
                        state: state.as_str(),
                    })
                    .set(n as i64);
            }
            for t in &health.targets {
                let w = WatchLabels {
                    policy_namespace: id.namespace.clone(),
                    policy: id.name.clone(),
                    group: t.key.target.group.clone(),
                    version: t.key.target.version.clone(),
                    kind: t.key.target.kind.clone(),
                };
                let typed = |ty: &'static str| WatchTypeLabels {
                    policy_namespace: w.policy_namespace.clone(),
                    policy: w.policy.clone(),
                    group: w.group.clone(),
                    version: w.version.clone(),
                    kind: w.kind.clone(),
                    r#type: ty,
                };
                events
                    .get_or_create(&typed("ADDED"))
                    .inc_by(t.counters.added);
                events
                    .get_or_create(&typed("MODIFIED"))
                    .inc_by(t.counters.modified);
                events
                    .get_or_create(&typed("DELETED"))
                    .inc_by(t.counters.deleted);
                events
                    .get_or_create(&typed("BOOKMARK"))
                    .inc_by(t.counters.bookmarks);
                reconnects.get_or_create(&w).inc_by(t.reconnects);
                relists.get_or_create(&w).inc_by(t.relists);
                objects.get_or_create(&w).inc_by(t.objects as i64);
                for (reason, n) in &t.errors {
                    errors
                        .get_or_create(&WatchReasonLabels {
                            policy_namespace: w.policy_namespace.clone(),
                            policy: w.policy.clone(),
                            group: w.group.clone(),
                            version: w.version.clone(),
                            kind: w.kind.clone(),
                            reason: reason.as_str(),
                        })
                        .inc_by(*n);
                }
            }
            cpu.get_or_create(&policy)
                .inc_by(health.cpu.cpu_seconds_total.max(0.0));
            throttled_seconds
                .get_or_create(&policy)
                .inc_by(health.cpu.throttled_seconds_total.max(0.0));
            throttled
                .get_or_create(&policy)
                .set(i64::from(health.cpu.throttled));
        }

        encode(
            &mut encoder,
            "watchpool_watch_events",
            "Watch events received, by type",
            &events,
        )?;
        encode(
            &mut encoder,
            "watchpool_watch_reconnects",
            "Watch connections re-opened after the first",
            &reconnects,
        )?;
        encode(
            &mut encoder,
            "watchpool_watch_relists",
            "Full relists after the initial list",
            &relists,
        )?;
        encode(
            &mut encoder,
            "watchpool_watch_errors",
            "Failed lists and watches, by reason",
            &errors,
        )?;
        encode(
            &mut encoder,
            "watchpool_watch_targets",
            "Watches by state",
            &targets,
        )?;
        encode(
            &mut encoder,
            "watchpool_cache_objects",
            "Objects cached",
            &objects,
        )?;
        encode(
            &mut encoder,
            "watchpool_pool_cpu_seconds",
            "CPU seconds used by the pool's tasks",
            &cpu,
        )?;
        encode(
            &mut encoder,
            "watchpool_pool_cpu_throttled_seconds",
            "Seconds the pool's tasks were held back by its CPU budget",
            &throttled_seconds,
        )?;
        encode(
            &mut encoder,
            "watchpool_pool_cpu_throttled",
            "1 while the pool is held to its CPU budget",
            &throttled,
        )?;
        Ok(())
    }
}

fn encode<M: EncodeMetric>(
    encoder: &mut prometheus_client::encoding::DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &M,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

/// Every metric of the operator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconcile_total: Family<ResultLabels, Counter>,
    /// Failed reconciles by error category.
    pub reconcile_errors: Family<ReasonLabels, Counter>,
    /// Time per reconcile.
    pub reconcile_duration: Histogram,
    /// Status writes per policy.
    pub status_writes: Family<PolicyLabels, Counter>,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// The pools' health, read at scrape time.
    pub pools: Arc<PoolHealthSources>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new(version: &str, git_commit: &str) -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ResultLabels, Counter>::default();
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let status_writes = Family::<PolicyLabels, Counter>::default();
        let leader = Gauge::default();
        let pools = Arc::new(PoolHealthSources::default());
        registry.register(
            "watchpool_reconcile",
            "Reconciles of WatchPolicies, by result",
            reconcile_total.clone(),
        );
        registry.register(
            "watchpool_reconcile_errors",
            "Reconciles that failed, by error category",
            reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "watchpool_reconcile_duration",
            "Time taken by each reconcile",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "watchpool_status_writes",
            "Status writes, per policy",
            status_writes.clone(),
        );
        registry.register(
            "watchpool_leader",
            "1 while this replica holds the leader Lease (or runs alone)",
            leader.clone(),
        );
        registry.register(
            "watchpool_build",
            "Version and git commit of the running operator",
            Info::new(BuildLabels {
                version: version.to_owned(),
                git_commit: git_commit.to_owned(),
            }),
        );
        registry.register_collector(Box::new(PoolCollector {
            sources: pools.clone(),
        }));
        Self {
            registry,
            reconcile_total,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            leader,
            pools,
        }
    }

    /// Records one reconcile.
    pub fn observe_reconcile(&self, result: &'static str, duration: Duration) {
        self.reconcile_total
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// Forgets the series of a deleted policy.
    pub fn forget_policy(&self, id: &PoolId) {
        self.pools.remove(id);
        self.status_writes.remove(&PolicyLabels::from(id));
    }

    /// The OpenMetrics text exposition, ending with `# EOF`.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use watchpool_api::{ErrorReason, NamespaceScope, TargetConfig};
    use watchpool_engine::{CpuHealth, TargetHealth, WatchCounters, WatchKey};

    use super::*;

    fn health() -> PoolHealth {
        PoolHealth {
            targets: vec![TargetHealth {
                key: WatchKey {
                    target: std::sync::Arc::new(TargetConfig {
                        api_version: "apps/v1".into(),
                        group: "apps".into(),
                        version: "v1".into(),
                        kind: "Deployment".into(),
                        scope: NamespaceScope::All,
                        label_selector: None,
                        field_selector: None,
                        metadata_only: true,
                    }),
                    namespace: None,
                },
                state: TargetState::Watching,
                objects: 12,
                resource_version: None,
                connected_since: None,
                last_event_time: None,
                last_bookmark_time: None,
                reconnects: 3,
                relists: 1,
                consecutive_failures: 0,
                next_retry_time: None,
                last_error: None,
                errors: vec![(ErrorReason::Gone, 2)],
                counters: WatchCounters {
                    added: 12,
                    modified: 7,
                    deleted: 1,
                    bookmarks: 4,
                    ..Default::default()
                },
            }],
            cpu: CpuHealth {
                cpu_seconds_total: 1.5,
                throttled: true,
                ..Default::default()
            },
        }
    }

    #[test]
    fn pool_series_follow_the_health_and_vanish_with_the_policy() {
        let metrics = Metrics::new("0.1.0", "abc123");
        let id = PoolId {
            namespace: "obs".into(),
            name: "inv".into(),
        };
        let (_tx, rx) = watch::channel(health());
        metrics.pools.insert(id.clone(), rx);
        metrics
            .status_writes
            .get_or_create(&PolicyLabels::from(&id))
            .inc();
        let text = metrics.render().unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in [
            r#"watchpool_watch_events_total{policy_namespace="obs",policy="inv",group="apps",version="v1",kind="Deployment",type="MODIFIED"} 7"#,
            r#"watchpool_watch_reconnects_total{policy_namespace="obs",policy="inv",group="apps",version="v1",kind="Deployment"} 3"#,
            r#"watchpool_watch_errors_total{policy_namespace="obs",policy="inv",group="apps",version="v1",kind="Deployment",reason="Gone"} 2"#,
            r#"watchpool_watch_targets{policy_namespace="obs",policy="inv",state="Watching"} 1"#,
            r#"watchpool_cache_objects{policy_namespace="obs",policy="inv",group="apps",version="v1",kind="Deployment"} 12"#,
            r#"watchpool_pool_cpu_seconds_total{policy_namespace="obs",policy="inv"} 1.5"#,
            r#"watchpool_pool_cpu_throttled{policy_namespace="obs",policy="inv"} 1"#,
            r#"watchpool_status_writes_total{policy_namespace="obs",policy="inv"} 1"#,
            r#"watchpool_build_info{version="0.1.0",git_commit="abc123"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        metrics.forget_policy(&id);
        let text = metrics.render().unwrap();
        assert!(!text.contains(r#"policy="inv""#), "{text}");
    }
}
