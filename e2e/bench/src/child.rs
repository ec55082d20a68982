//! The measured child processes: a watchpool pool (`pool-child`) or the peer, kube-runtime's
//! `watcher()` with `default_backoff()` and optionally a reflector store (`peer-child`).
//!
//! Each child runs in its own process so that its CPU time and RSS can be read from `/proc`
//! without mixing with the emulator or the other side. The parent drives it over stdin/stdout,
//! one command per line and one JSON answer per line:
//!
//! - `stats`: objects cached, events processed, watches synced, errors (and the pool's own
//!   CPU meter);
//! - `wait-object <name> <timeout_ms>`: answers once an object of that name has been seen
//!   (pool: it is in the cache; peer: an event carried it), or when the timeout ends;
//! - `wait-state <State> <timeout_ms>`: pool only, answers once some watch is in that state;
//! - `quit`: exits.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use watchpool_api::{
    BackoffConfig, LimitsConfig, NamespaceScope, PolicyConfig, TargetConfig, TargetState,
    TimeoutsConfig,
};
use watchpool_engine::client::{ClientOptions, build_client};
use watchpool_engine::{Pool, PoolHandle, PoolId, PoolOptions, WatchKey};

use crate::BenchError;

/// Which implementation a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// A watchpool pool (`watchpool_engine::Pool`).
    Pool,
    /// kube-runtime's `watcher()` with `default_backoff()`.
    Peer,
}

/// The kind of object watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// `v1/ConfigMap`.
    ConfigMap,
    /// `v1/Pod`.
    Pod,
}

impl ObjectKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Pod => "Pod",
        }
    }

    /// The resource's plural.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmaps",
            ObjectKind::Pod => "pods",
        }
    }
}

/// The policy knobs a benchmark sets on the pool (the peer has none: it runs kube's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knobs {
    /// `timeouts.idle`.
    pub idle_ms: u64,
    /// `timeouts.watch`.
    pub watch_secs: u64,
    /// `backoff.initial`.
    pub backoff_initial_ms: u64,
    /// `backoff.max`.
    pub backoff_max_ms: u64,
    /// `backoff.resetAfter`.
    pub reset_after_ms: u64,
    /// `limits.cpu`, in millicores.
    pub cpu_millis: u64,
}

impl Default for Knobs {
    /// The policy defaults, except a CPU budget of 4 cores so that only the benchmarks that
    /// measure the budget are held by it.
    fn default() -> Self {
        let t = TimeoutsConfig::default();
        let b = BackoffConfig::default();
        Knobs {
            idle_ms: millis(t.idle),
            watch_secs: t.watch.as_secs(),
            backoff_initial_ms: millis(b.initial),
            backoff_max_ms: millis(b.max),
            reset_after_ms: millis(b.reset_after),
            cpu_millis: 4000,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a child watches and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Pool or peer.
    pub side: Side,
    /// The emulator's URL.
    pub url: String,
    /// The kind watched.
    pub kind: ObjectKind,
    /// One watch per namespace.
    pub namespaces: Vec<String>,
    /// Metadata only (pool: `metadataOnly`; peer: `Api<PartialObjectMeta<K>>`).
    pub metadata_only: bool,
    /// Peer only: feed a reflector store.
    pub store: bool,
    /// Peer only: `DynamicObject` instead of the typed k8s-openapi struct.
    pub dynamic: bool,
    /// Pool only: the policy's knobs.
    pub knobs: Knobs,
    /// Pool only: watch each namespace this many times, through targets that differ only by a
    /// field selector matching every object (`metadata.name!=copy-<i>`), so that one write
    /// reaches the pool `copies` times.
    #[serde(default = "one")]
    pub copies: usize,
    /// Pool only: one target per namespace instead of one target listing every namespace.
    #[serde(default)]
    pub split_targets: bool,
}

fn one() -> usize {
    1
}

impl ChildSpec {
    /// A spec with default knobs, no store, typed objects.
    pub fn new(side: Side, url: &str, kind: ObjectKind, namespaces: Vec<String>) -> Self {
        ChildSpec {
            side,
            url: url.to_string(),
            kind,
            namespaces,
            metadata_only: false,
            store: false,
            dynamic: false,
            knobs: Knobs::default(),
            copies: 1,
            split_targets: false,
        }
    }

    /// The policy a pool child runs.
    pub fn policy(&self) -> PolicyConfig {
        let mut namespaces = self.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        let k = self.knobs;
        PolicyConfig {
            suspend: false,
            targets: self.targets(&namespaces),
            timeouts: TimeoutsConfig {
                watch: Duration::from_secs(k.watch_secs),
                idle: Duration::from_millis(k.idle_ms),
                ..TimeoutsConfig::default()
            },
            backoff: BackoffConfig {
                initial: Duration::from_millis(k.backoff_initial_ms),
                max: Duration::from_millis(k.backoff_max_ms),
                reset_after: Duration::from_millis(k.reset_after_ms),
                ..BackoffConfig::default()
            },
            limits: LimitsConfig {
                cpu_millis: k.cpu_millis,
                max_objects: 10_000_000,
                ..LimitsConfig::default()
            },
        }
    }
}

impl ChildSpec {
    fn targets(&self, namespaces: &[String]) -> Vec<TargetConfig> {
        let scopes: Vec<Vec<String>> = if self.split_targets {
            namespaces.iter().map(|ns| vec![ns.clone()]).collect()
        } else {
            vec![namespaces.to_vec()]
        };
        let mut targets = Vec::new();
        for scope in scopes {
            for i in 0..self.copies.max(1) {
                targets.push(TargetConfig {
                    api_version: "v1".into(),
                    group: String::new(),
                    version: "v1".into(),
                    kind: self.kind.name().into(),
                    scope: NamespaceScope::Namespaces(scope.clone()),
                    label_selector: None,
                    field_selector: (self.copies > 1).then(|| format!("metadata.name!=copy-{i}")),
                    metadata_only: self.metadata_only,
                });
            }
        }
        targets
    }
}

/// A child's answer to `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChildStats {
    /// Objects in the cache (pool) or the reflector stores (peer with a store).
    pub objects: u64,
    /// Watch events processed (added, modified, deleted; list items are not events).
    pub events: u64,
    /// Watches that completed their initial list and are watching.
    pub synced: u64,
    /// Errors the streams reported (peer) or failures recorded (pool).
    pub errors: u64,
    /// Relists (pool only).
    pub relists: u64,
    /// The pool's own CPU meter, millicores over its window (pool only).
    pub meter_millis: f64,
    /// CPU seconds the pool's meter counted since start (pool only).
    pub meter_seconds: f64,
    /// True while the pool is held to its budget (pool only).
    pub throttled: bool,
}

/// A child's answer to `wait-object` and `wait-state`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitAnswer {
    /// True when the condition was met before the timeout.
    pub found: bool,
    /// Milliseconds the child waited.
    pub waited_ms: f64,
}

/// Runs a child until `quit` or the end of stdin.
pub fn run_child(spec_json: &str) -> Result<(), BenchError> {
    let spec: ChildSpec = serde_json::from_str(spec_json).map_err(BenchError::Json)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Io)?;
    runtime.block_on(async move {
        let cluster: http::Uri = spec
            .url
            .parse()
            .map_err(|_| BenchError::Setup(format!("bad url {}", spec.url)))?;
        let config = kube::Config::new(cluster);
        let side: Box<dyn Observed> = match spec.side {
            Side::Pool => {
                let client = build_client(config, &ClientOptions::default())
                    .await
                    .map_err(|e| BenchError::Setup(format!("client: {e}")))?;
                Box::new(PoolSide::start(client, &spec))
            }
            Side::Peer => {
                let client = kube::Client::try_from(config).map_err(BenchError::Kube)?;
                Box::new(PeerSide::start(client, &spec))
            }
        };
        serve(side.as_ref()).await
    })
}

async fn serve(side: &dyn Observed) -> Result<(), BenchError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.map_err(BenchError::Io)? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["stats"] => serde_json::to_string(&side.stats()),
            ["wait-object", name, timeout] => {
                let timeout = Duration::from_millis(timeout.parse().unwrap_or(10_000));
                let started = Instant::now();
                let found = poll_until(timeout, || side.has_object(name)).await;
                serde_json::to_string(&WaitAnswer {
                    found,
                    waited_ms: started.elapsed().as_secs_f64() * 1e3,
                })
            }
            ["wait-state", state, timeout] => {
                let timeout = Duration::from_millis(timeout.parse().unwrap_or(10_000));
                let started = Instant::now();
                let found = poll_until(timeout, || side.in_state(state)).await;
                serde_json::to_string(&WaitAnswer {
                    found,
                    waited_ms: started.elapsed().as_secs_f64() * 1e3,
                })
            }
            ["quit"] => break,
            _ => Ok(format!("{{\"error\":\"unknown command {line:?}\"}}")),
        }
        .map_err(BenchError::Json)?;
        out.write_all(answer.as_bytes())
            .await
            .map_err(BenchError::Io)?;
        out.write_all(b"\n").await.map_err(BenchError::Io)?;
        out.flush().await.map_err(BenchError::Io)?;
    }
    side.stop().await;
    Ok(())
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What the command loop asks of either side.
trait Observed: Send + Sync {
    fn stats(&self) -> ChildStats;
    fn has_object(&self, name: &str) -> bool;
    fn in_state(&self, state: &str) -> bool;
    fn stop(&self) -> futures::future::BoxFuture<'_, ()>;
}

/// A pool and the keys of its watches.
struct PoolSide {
    handle: Mutex<Option<PoolHandle>>,
    keys: Vec<WatchKey>,
}

impl PoolSide {
    fn start(client: kube::Client, spec: &ChildSpec) -> Self {
        let policy = spec.policy();
        let keys = watchpool_engine::pool::watch_keys(&policy);
        let handle = Pool::spawn(
            client,
            PoolId {
                namespace: "bench".into(),
                name: "bench".into(),
            },
            policy,
            PoolOptions::default(),
        );
        PoolSide {
            handle: Mutex::new(Some(handle)),
            keys,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&PoolHandle) -> T) -> Option<T> {
        let guard = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(f)
    }
}

impl Observed for PoolSide {
    fn stats(&self) -> ChildStats {
        self.with(|h| {
            let health = h.health().borrow().clone();
            let mut s = ChildStats {
                objects: h.cached_total(),
                meter_millis: health.cpu.used_millis,
                meter_seconds: health.cpu.cpu_seconds_total,
                throttled: health.cpu.throttled,
                ..ChildStats::default()
            };
            for t in &health.targets {
                let c = t.counters;
                s.events += c.added + c.modified + c.deleted;
                s.errors += t.errors.iter().map(|(_, n)| n).sum::<u64>();
                s.relists += t.relists;
                if t.state == TargetState::Watching {
                    s.synced += 1;
                }
            }
            s
        })
        .unwrap_or_default()
    }

    fn has_object(&self, name: &str) -> bool {
        self.with(|h| {
            self.keys
                .iter()
                .any(|k| h.cached_raw(k, k.namespace.as_deref(), name).is_some())
        })
        .unwrap_or(false)
    }

    fn in_state(&self, state: &str) -> bool {
        self.with(|h| {
            h.health()
                .borrow()
                .targets
                .iter()
                .any(|t| format!("{:?}", t.state) == state)
        })
        .unwrap_or(false)
    }

    fn stop(&self) -> futures::future::BoxFuture<'_, ()> {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Box::pin(async move {
            if let Some(h) = handle {
                h.shutdown().await;
            }
        })
    }
}

/// Counters shared by the peer's streams.
#[derive(Default)]
struct PeerCounters {
    events: AtomicU64,
    synced: AtomicU64,
    errors: AtomicU64,
    /// Names of objects called `sentinel-*` seen in any event.
    sentinels: Mutex<HashSet<String>>,
}

type StoreLen = Box<dyn Fn() -> usize + Send + Sync>;

/// The peer: one `watcher()` stream per namespace.
struct PeerSide {
    counters: Arc<PeerCounters>,
    stores: Vec<StoreLen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PeerSide {
    fn start(client: kube::Client, spec: &ChildSpec) -> Self {
        let counters = Arc::new(PeerCounters::default());
        let mut side = PeerSide {
            counters,
            stores: Vec::new(),
            tasks: Vec::new(),
        };
        for ns in &spec.namespaces {
            let c = client.clone();
            let store = spec.store;
            match (spec.kind, spec.metadata_only, spec.dynamic) {
                (ObjectKind::ConfigMap, true, _) => {
                    side.watch::<PartialObjectMeta<ConfigMap>>(Api::namespaced(c, ns), store, ())
                }
                (ObjectKind::Pod, true, _) => {
                    side.watch::<PartialObjectMeta<Pod>>(Api::namespaced(c, ns), store, ())
                }
                (ObjectKind::ConfigMap, false, false) => {
                    side.watch::<ConfigMap>(Api::namespaced(c, ns), store, ())
                }
                (ObjectKind::Pod, false, false) => {
                    side.watch::<Pod>(Api::namespaced(c, ns), store, ())
                }
                (ObjectKind::ConfigMap, false, true) => {
                    let ar = ApiResource::erase::<ConfigMap>(&());
                    side.watch::<DynamicObject>(Api::namespaced_with(c, ns, &ar), store, ar)
                }
                (ObjectKind::Pod, false, true) => {
                    let ar = ApiResource::erase::<Pod>(&());
                    side.watch::<DynamicObject>(Api::namespaced_with(c, ns, &ar), store, ar)
                }
            }
        }
        side
    }

    fn watch<K>(&mut self, api: Api<K>, store: bool, dt: K::DynamicType)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Clone + Eq + Hash + Send + Sync,
    {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let counters = self.counters.clone();
        if store {
            let writer: Writer<K> = Writer::new(dt);
            let reader = writer.as_reader();
            self.stores.push(Box::new(move || reader.len()));
            let stream = reflector::reflector(writer, stream);
            self.tasks.push(tokio::spawn(consume(stream, counters)));
        } else {
            self.tasks.push(tokio::spawn(consume(stream, counters)));
        }
    }
}

/// Reads a peer stream to its end, counting what it sees.
async fn consume<K: Resource>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    counters: Arc<PeerCounters>,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Apply(o) | Event::Delete(o)) => {
                counters.events.fetch_add(1, Ordering::Relaxed);
                if let Some(name) = o.meta().name.as_deref()
                    && name.starts_with("sentinel-")
                {
                    counters
                        .sentinels
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.to_string());
                }
            }
            Ok(Event::InitApply(_) | Event::Init) => {}
            Ok(Event::InitDone) => {
                counters.synced.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Observed for PeerSide {
    fn stats(&self) -> ChildStats {
        let c = &self.counters;
        ChildStats {
            objects: self.stores.iter().map(|len| len() as u64).sum(),
            events: c.events.load(Ordering::Relaxed),
            synced: c.synced.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            ..ChildStats::default()
        }
    }

    fn has_object(&self, name: &str) -> bool {
        self.counters
            .sentinels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    fn in_state(&self, _state: &str) -> bool {
        false
    }

    fn stop(&self) -> futures::future::BoxFuture<'_, ()> {
        for t in &self.tasks {
            t.abort();
        }
        Box::pin(async {})
    }
}
