//! Helpers around the kube emulator.

use std::time::{Duration, Instant};

use kube_emulator::{Emulator, EmulatorConfig, RequestRecord};
use serde_json::{Value, json};
use watchpool_engine::{PoolHandle, WatchKey, digest};

/// An emulator with a 1 s bookmark cadence.
pub async fn start() -> Emulator {
    Emulator::start(EmulatorConfig {
        bookmark_interval: Duration::from_secs(1),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// A ConfigMap carrying a sequence number.
pub fn configmap(ns: &str, name: &str, seq: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"seq": seq.to_string()}
    })
}

/// Creates `n` ConfigMaps `cm-0`… in `ns`.
pub fn create_configmaps(emu: &Emulator, ns: &str, n: u64) {
    for i in 0..n {
        emu.create(configmap(ns, &format!("cm-{i}"), i)).unwrap();
    }
}

/// Count and digest of the server's objects of a kind (a fresh list).
pub fn server_view(
    emu: &Emulator,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
) -> (u64, String) {
    let items = emu.list(api_version, kind, ns).unwrap();
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|o| {
            (
                o["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let d = digest(pairs.iter().map(|(u, r)| (u.as_str(), r.as_str())));
    (items.len() as u64, d)
}

/// Count and digest of the pool's cache of `key`.
pub fn cache_view(pool: &PoolHandle, key: &WatchKey) -> Option<(u64, String)> {
    pool.caches()
        .into_iter()
        .find(|c| &c.key == key)
        .map(|c| (c.count, c.digest))
}

/// Waits until the cache of `key` equals a fresh list of the server.
pub async fn wait_synced(emu: &Emulator, pool: &PoolHandle, key: &WatchKey, deadline: Duration) {
    let kind = &key.target.kind;
    let api_version = &key.target.api_version;
    let end = Instant::now() + deadline;
    loop {
        let server = server_view(emu, api_version, kind, key.namespace.as_deref());
        let cache = cache_view(pool, key);
        if cache.as_ref() == Some(&server) {
            return;
        }
        assert!(
            Instant::now() < end,
            "cache {cache:?} never matched the server {server:?} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests of the engine (by user agent) on `resource` with `verb`.
pub fn requests(emu: &Emulator, verb: &str, resource: &str) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.contains("watchpool-engine-test")
                && r.verb == verb
                && r.resource == resource
        })
        .collect()
}

/// Every request of the engine on `resource` (lists and watches), in order.
pub fn resource_requests(emu: &Emulator, resource: &str) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.user_agent.contains("watchpool-engine-test") && r.resource == resource)
        .collect()
}

/// When a request arrived.
pub fn at(record: &RequestRecord) -> jiff::Timestamp {
    record.time.parse().unwrap()
}

/// Time from the end of request `a` (for a watch: the end of its stream) to the start of `b`.
pub fn gap(a: &RequestRecord, b: &RequestRecord) -> Duration {
    let end_a = at(a) + jiff::SignedDuration::from_millis(a.duration_ms as i64);
    let d = at(b).duration_since(end_a);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The value of `name` in a request's query string.
pub fn query_param(record: &RequestRecord, name: &str) -> Option<String> {
    record.query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Asserts every request after a failed one waited at least `floor`: `failed` says which
/// requests failed.
pub fn assert_spaced_after_failures(
    records: &[RequestRecord],
    floor: Duration,
    failed: impl Fn(&RequestRecord) -> bool,
) {
    for pair in records.windows(2) {
        if failed(&pair[0]) {
            let g = gap(&pair[0], &pair[1]);
            assert!(
                g >= floor,
                "request {} {} came {g:?} after failed request {} {} (status {})",
                pair[1].verb,
                pair[1].seq,
                pair[0].verb,
                pair[0].seq,
                pair[0].status
            );
        }
    }
}

/// Watch streams the server still serves to the engine (answered 200 and not ended).
pub fn open_streams(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| {
            r.watch
                && r.status == 200
                && r.watch_end.is_none()
                && r.user_agent.contains("watchpool-engine-test")
        })
        .count()
}

/// Shuts `pool` down and proves it left nothing behind — no socket of this process to the
/// emulator, no watch stream open on its side — then stops the emulator.
pub async fn finish(emu: Emulator, pool: PoolHandle) {
    let port = emu.addr().port();
    pool.shutdown().await;
    super::eventually(Duration::from_secs(2), "engine sockets closed", || {
        super::sockets_to_port(port) == 0
    })
    .await;
    super::eventually(Duration::from_secs(2), "server watches closed", || {
        open_streams(&emu) == 0
    })
    .await;
    emu.shutdown().await;
}
