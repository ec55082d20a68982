//! A watch pool: one per WatchPolicy. Owns its target watchers, their caches and its CPU meter.
//!
//! PUBLIC INTERFACE (used by the operator crate; keep these signatures stable):
//! - `Pool::spawn(client, id, config, options) -> PoolHandle`
//! - `PoolHandle::reconfigure(&self, PolicyConfig)`: only targets whose definition changed restart
//! - `PoolHandle::health(&self) -> watch::Receiver<PoolHealth>`
//! - `PoolHandle::caches(&self) -> Vec<CacheView>`
//! - `PoolHandle::shutdown(self).await`: cancels every task and closes every connection
//! - dropping a `PoolHandle` cancels everything too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use watchpool_api::{NamespaceScope, PolicyConfig, TargetState};

use crate::cache::{Cache, ObjectBudget, ObjectIdentity};
use crate::cpu::CpuMeter;
use crate::crds::CrdSignal;
use crate::health::{CacheView, PoolHealth, WatchKey};
use crate::hub::{CPU_REFRESH, Hub, PUBLISH_INTERVAL, Transition};
use crate::watcher::{WatchContext, WatchSettings, Watcher};

/// How often a pool without counter changes refreshes its CPU figures while they still move
/// (the average decays for [`crate::cpu::BUCKETS`] seconds after the last work).
pub const CPU_POLL_BUSY: Duration = Duration::from_secs(1);

/// Identifies a pool: the namespace and name of its WatchPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
}

/// Engine-wide options of a pool that do not come from the policy.
#[derive(Clone, Debug, Default)]
pub struct PoolOptions {}

/// Starts pools.
#[derive(Debug)]
pub struct Pool;

/// One running watch of the pool.
#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    cache: Cache,
}

impl Running {
    fn stop(&mut self) -> Option<JoinHandle<()>> {
        self.cancel.cancel();
        let task = self.task.take();
        if let Some(task) = &task {
            task.abort();
        }
        self.cache.clear();
        task
    }
}

#[derive(Debug)]
struct Inner {
    config: PolicyConfig,
    watches: BTreeMap<WatchKey, Running>,
    generation: u64,
    stopped: bool,
}

struct Shared {
    client: kube::Client,
    hub: Arc<Hub>,
    meter: Arc<CpuMeter>,
    budget: Arc<ObjectBudget>,
    settings: watch::Sender<WatchSettings>,
    runtime: tokio::runtime::Handle,
    root: CancellationToken,
    crds: Arc<CrdSignal>,
}

impl Shared {
    fn context(&self) -> WatchContext {
        WatchContext {
            client: self.client.clone(),
            settings: self.settings.subscribe(),
            hub: self.hub.clone(),
            meter: self.meter.clone(),
            crds: Some(self.crds.clone()),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

/// The handle the controller keeps for a running pool.
#[derive(Debug)]
pub struct PoolHandle {
    id: PoolId,
    health: watch::Receiver<PoolHealth>,
    shared: Arc<Shared>,
    inner: Arc<Mutex<Inner>>,
    publisher: Option<JoinHandle<()>>,
}

/// The watches a configuration asks for: one per (target, namespace), or one per target when
/// cluster-wide.
pub fn watch_keys(config: &PolicyConfig) -> Vec<WatchKey> {
    let mut keys: Vec<WatchKey> = Vec::new();
    for target in &config.targets {
        let shared = Arc::new(target.clone());
        match &target.scope {
            NamespaceScope::All => keys.push(WatchKey {
                target: shared,
                namespace: None,
            }),
            NamespaceScope::Namespaces(namespaces) => {
                keys.extend(namespaces.iter().map(|ns| WatchKey {
                    target: Arc::clone(&shared),
                    namespace: Some(ns.clone()),
                }));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn settings_of(config: &PolicyConfig, generation: u64) -> WatchSettings {
    WatchSettings {
        timeouts: config.timeouts,
        backoff: config.backoff,
        limits: config.limits,
        generation,
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// Starts a pool for `config` on `client`. Must be called inside a tokio runtime.
    pub fn spawn(
        client: kube::Client,
        id: PoolId,
        config: PolicyConfig,
        options: PoolOptions,
    ) -> PoolHandle {
        let PoolOptions {} = options;
        let hub = Hub::new();
        let health = hub.subscribe();
        let meter = Arc::new(CpuMeter::new(config.limits.cpu_millis));
        let budget = Arc::new(ObjectBudget::new(config.limits.max_objects));
        let (settings, _) = watch::channel(settings_of(&config, 0));
        let runtime = tokio::runtime::Handle::current();
        let root = CancellationToken::new();
        let crds = CrdSignal::new(
            WatchContext {
                client: client.clone(),
                settings: settings.subscribe(),
                hub: hub.clone(),
                meter: meter.clone(),
                crds: None,
            },
            root.child_token(),
        );
        let shared = Arc::new(Shared {
            client,
            hub: hub.clone(),
            meter: meter.clone(),
            budget,
            settings,
            runtime: runtime.clone(),
            root: root.clone(),
            crds,
        });
        let publisher = runtime.spawn(publish_loop(hub, meter, root));
        let inner = Arc::new(Mutex::new(Inner {
            config: config.clone(),
            watches: BTreeMap::new(),
            generation: 0,
            stopped: false,
        }));
        let handle = PoolHandle {
            id,
            health,
            shared,
            inner,
            publisher: Some(publisher),
        };
        handle.apply(config, true);
        handle
    }
}

/// Publishes the pool's health: once a counter changed, at most every [`PUBLISH_INTERVAL`];
/// without changes only to refresh the CPU figures, every [`CPU_POLL_BUSY`] while the pool's
/// CPU average is still moving and every [`CPU_REFRESH`] once it is zero.
async fn publish_loop(hub: Arc<Hub>, meter: Arc<CpuMeter>, cancel: CancellationToken) {
    let mut last = tokio::time::Instant::now();
    loop {
        let cpu = meter.snapshot();
        let quiet = if cpu.used_millis > 0.0 || cpu.throttled {
            CPU_POLL_BUSY
        } else {
            CPU_REFRESH
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = hub.changed() => {}
            () = tokio::time::sleep(quiet) => {}
        }
        // Coalesce: the changes of the next moments go out with this one.
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(last + PUBLISH_INTERVAL) => {}
        }
        hub.set_cpu(meter.snapshot());
        hub.publish_if_dirty();
        last = tokio::time::Instant::now();
    }
}

impl PoolHandle {
    /// The policy this pool serves.
    pub fn id(&self) -> &PoolId {
        &self.id
    }

    /// Applies a new configuration in place: only the targets whose definition changed restart.
    pub fn reconfigure(&self, config: PolicyConfig) {
        self.apply(config, false);
    }

    fn apply(&self, config: PolicyConfig, first: bool) {
        let shared = &self.shared;
        let mut inner = lock(&self.inner);
        if inner.stopped {
            return;
        }
        let changed = first || inner.config != config;
        if changed && !first {
            inner.generation += 1;
            let settings = settings_of(&config, inner.generation);
            shared.settings.send_replace(settings);
        }
        shared.budget.set_max(config.limits.max_objects);
        shared.meter.set_limit(config.limits.cpu_millis);
        let wanted = watch_keys(&config);
        let mut stopped = Vec::new();
        if config.suspend {
            for (key, mut running) in std::mem::take(&mut inner.watches) {
                stopped.extend(running.stop());
                shared.hub.remove(&key);
            }
            for key in &wanted {
                let slot = shared.hub.add(key.clone(), TargetState::Suspended);
                drop(slot);
            }
            // Forget the entries of targets no longer wanted.
            if let Some(old) = (!first).then(|| watch_keys(&inner.config)) {
                for key in old.iter().filter(|k| !wanted.contains(k)) {
                    shared.hub.remove(key);
                }
            }
        } else {
            if inner.config.suspend && !first {
                for key in watch_keys(&inner.config) {
                    shared.hub.remove(&key);
                }
            }
            let keys: Vec<WatchKey> = inner.watches.keys().cloned().collect();
            for key in keys.iter().filter(|k| !wanted.contains(k)) {
                if let Some(mut running) = inner.watches.remove(key) {
                    stopped.extend(running.stop());
                }
                shared.hub.remove(key);
            }
            for key in wanted {
                if inner.watches.contains_key(&key) {
                    continue;
                }
                let running = self.start(key.clone());
                inner.watches.insert(key, running);
            }
        }
        inner.config = config;
        drop(inner);
        drop(stopped);
        shared.hub.publish();
    }

    fn start(&self, key: WatchKey) -> Running {
        let shared = &self.shared;
        let cache = Cache::new(key.clone(), shared.budget.clone());
        let slot = shared.hub.add(key.clone(), TargetState::Pending);
        let watcher = Watcher::new(shared.context(), key, cache.clone(), slot);
        let cancel = shared.root.child_token();
        let token = cancel.clone();
        let task = shared.runtime.spawn(shared.meter.metered(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = watcher.run() => {}
            }
        }));
        Running {
            cancel,
            task: Some(task),
            cache,
        }
    }

    /// The pool's health, updated by the watchers as it changes.
    pub fn health(&self) -> watch::Receiver<PoolHealth> {
        self.health.clone()
    }

    /// A count and digest of each watch's cache.
    pub fn caches(&self) -> Vec<CacheView> {
        lock(&self.inner)
            .watches
            .values()
            .map(|running| running.cache.view())
            .collect()
    }

    /// The identities (uid, namespace, name, resourceVersion) of the objects cached for `key`,
    /// sorted; `None` when the pool does not run that watch.
    pub fn cached_objects(&self, key: &WatchKey) -> Option<Vec<ObjectIdentity>> {
        lock(&self.inner)
            .watches
            .get(key)
            .map(|running| running.cache.identities())
    }

    /// The raw bytes cached for one object of `key` (whole object, or metadata only).
    pub fn cached_raw(
        &self,
        key: &WatchKey,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<bytes::Bytes> {
        lock(&self.inner)
            .watches
            .get(key)
            .and_then(|running| running.cache.raw(namespace, name))
    }

    /// Every state change of the pool's watches so far (bounded, oldest first).
    pub fn transitions(&self) -> Vec<Transition> {
        self.shared.hub.transitions()
    }

    /// The watches the pool currently runs.
    pub fn watch_keys(&self) -> Vec<WatchKey> {
        lock(&self.inner).watches.keys().cloned().collect()
    }

    /// Watcher tasks of the pool that have not ended yet.
    pub fn live_tasks(&self) -> usize {
        lock(&self.inner)
            .watches
            .values()
            .filter(|r| r.task.as_ref().is_some_and(|t| !t.is_finished()))
            .count()
    }

    /// The pool's CPU figures now, straight from its meter (the published health carries them
    /// coalesced).
    pub fn cpu(&self) -> crate::health::CpuHealth {
        self.shared.meter.snapshot()
    }

    /// Objects cached across the pool.
    pub fn cached_total(&self) -> u64 {
        self.shared.budget.used()
    }

    /// Cancels every task of the pool and waits until they have ended and their connections
    /// are closed.
    pub async fn shutdown(mut self) {
        let tasks = self.stop_all();
        for task in tasks {
            let _ = task.await;
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.abort();
            let _ = publisher.await;
        }
    }

    fn stop_all(&self) -> Vec<JoinHandle<()>> {
        self.shared.root.cancel();
        let mut inner = lock(&self.inner);
        inner.stopped = true;
        let watches = std::mem::take(&mut inner.watches);
        drop(inner);
        let mut tasks: Vec<JoinHandle<()>> = watches
            .into_values()
            .filter_map(|mut running| running.stop())
            .collect();
        tasks.extend(self.shared.crds.stop());
        tasks
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        drop(self.stop_all());
        if let Some(publisher) = self.publisher.take() {
            publisher.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use watchpool_api::{BackoffConfig, LimitsConfig, TargetConfig, TimeoutsConfig};

    use super::*;

    fn target(kind: &str, scope: NamespaceScope) -> TargetConfig {
        TargetConfig {
            api_version: "v1".into(),
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            scope,
            label_selector: None,
            field_selector: None,
            metadata_only: false,
        }
    }

    #[test]
    fn one_watch_per_target_and_namespace() {
        let config = PolicyConfig {
            suspend: false,
            targets: vec![
                target(
                    "Pod",
                    NamespaceScope::Namespaces(vec!["a".into(), "b".into()]),
                ),
                target("Node", NamespaceScope::All),
            ],
            timeouts: TimeoutsConfig {
                watch: Duration::from_secs(5),
                ..TimeoutsConfig::default()
            },
            backoff: BackoffConfig::default(),
            limits: LimitsConfig::default(),
        };
        let keys = watch_keys(&config);
        assert_eq!(keys.len(), 3);
        assert!(
            keys.iter()
                .any(|k| k.target.kind == "Node" && k.namespace.is_none())
        );
        assert!(
            keys.iter()
                .any(|k| k.target.kind == "Pod" && k.namespace.as_deref() == Some("b"))
        );
    }
}
