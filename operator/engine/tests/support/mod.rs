//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

pub mod emu;
pub mod scripted;

use std::future::Future;
use std::time::{Duration, Instant};

use watchpool_api::{
    BackoffConfig, LimitsConfig, NamespaceScope, PolicyConfig, TargetConfig, TargetState,
    TimeoutsConfig,
};
use watchpool_engine::client::{ClientOptions, build_client};
use watchpool_engine::{PoolHandle, PoolHealth, TargetHealth, WatchKey};

/// A hardened client for a local server.
pub async fn client(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().unwrap());
    let options = ClientOptions {
        user_agent: "watchpool-engine-test".into(),
        ..ClientOptions::default()
    };
    build_client(config, &options).await.unwrap()
}

/// A target of `api_version`/`kind` in the given namespaces (`None`: cluster-wide).
pub fn target(api_version: &str, kind: &str, namespaces: Option<&[&str]>) -> TargetConfig {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.to_owned()),
    };
    TargetConfig {
        api_version: api_version.to_owned(),
        group,
        version,
        kind: kind.to_owned(),
        scope: match namespaces {
            Some(ns) => NamespaceScope::Namespaces(ns.iter().map(|s| (*s).to_owned()).collect()),
            None => NamespaceScope::All,
        },
        label_selector: None,
        field_selector: None,
        metadata_only: false,
    }
}

/// ConfigMaps in `ns`.
pub fn configmaps(ns: &str) -> TargetConfig {
    target("v1", "ConfigMap", Some(&[ns]))
}

/// A policy with short timeouts for tests: idle 2 s, request 1 s, watch 30 s, backoff 100 ms
/// to 1 s, reset after 5 s.
pub fn policy(targets: Vec<TargetConfig>) -> PolicyConfig {
    PolicyConfig {
        suspend: false,
        targets,
        timeouts: TimeoutsConfig {
            watch: Duration::from_secs(30),
            idle: Duration::from_secs(2),
            request: Duration::from_secs(1),
            resync: None,
        },
        backoff: BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(5),
            max_retries: 0,
        },
        limits: LimitsConfig {
            cpu_millis: 1000,
            max_objects: 100_000,
            max_event_size: 1024 * 1024,
        },
    }
}

/// The key of the only watch of `target` in `namespace`.
pub fn key(target: &TargetConfig, namespace: Option<&str>) -> WatchKey {
    WatchKey {
        target: target.clone().into(),
        namespace: namespace.map(str::to_owned),
    }
}

/// Polls `check` every 20 ms until it is true or `deadline` passes.
pub async fn eventually<F: FnMut() -> bool>(deadline: Duration, what: &str, mut check: F) {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the async `check` every 20 ms until it is true or `deadline` passes.
pub async fn eventually_async<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The current health of `key`.
pub fn target_health(pool: &PoolHandle, key: &WatchKey) -> Option<TargetHealth> {
    let health: PoolHealth = pool.health().borrow().clone();
    health.targets.into_iter().find(|t| &t.key == key)
}

/// The state of `key` now.
pub fn state(pool: &PoolHandle, key: &WatchKey) -> Option<TargetState> {
    target_health(pool, key).map(|t| t.state)
}

/// Waits until `key` is in `state`.
pub async fn wait_state(
    pool: &PoolHandle,
    key: &WatchKey,
    wanted: TargetState,
    deadline: Duration,
) {
    let mut rx = pool.health();
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let current = rx
            .borrow_and_update()
            .targets
            .iter()
            .find(|t| &t.key == key)
            .map(|t| t.state);
        if current == Some(wanted) {
            return;
        }
        match tokio::time::timeout_at(end, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out after {deadline:?} waiting for {wanted:?}; state {current:?}"),
        }
    }
}

/// The states `key` went through, in order, with consecutive duplicates removed.
pub fn states_seen(pool: &PoolHandle, key: &WatchKey) -> Vec<TargetState> {
    let mut out: Vec<TargetState> = Vec::new();
    for t in pool.transitions().into_iter().filter(|t| &t.key == key) {
        if out.last() != Some(&t.state) {
            out.push(t.state);
        }
    }
    out
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open TCP sockets of this process connected to `port` (from /proc/self/net/tcp and the fds).
pub fn sockets_to_port(port: u16) -> usize {
    use std::collections::HashSet;
    let mut inodes = HashSet::new();
    for file in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            let remote_port = cols[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 01 = ESTABLISHED.
            if remote_port == Some(port) && cols[3] == "01" {
                inodes.insert(cols[9].to_owned());
            }
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_owned)
        })
        .filter(|inode| inodes.contains(inode))
        .count()
}

/// CPU time of this process so far.
pub fn process_cpu() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// The id of a test pool named `name` in `default`.
pub fn pool_id(name: &str) -> watchpool_engine::PoolId {
    watchpool_engine::PoolId {
        namespace: "default".into(),
        name: name.into(),
    }
}
