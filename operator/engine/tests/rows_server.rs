//! FAULTS.md rows about the API server going away (restart, lost history, rewound
//! resourceVersions), against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::{Duration, Instant};

use kube_emulator::{Fault, FaultSpec, FutureRvPolicy, RestartRv};
use support::emu::{self, *};
use support::*;
use watchpool_api::{ErrorReason, TargetState};
use watchpool_engine::{Pool, PoolHandle, WatchKey};

/// A pool of ConfigMaps in `default` and `kube-system`, both synced.
async fn two_watch_pool(
    emu: &kube_emulator::Emulator,
    name: &str,
    resync: Option<Duration>,
) -> (PoolHandle, Vec<WatchKey>) {
    emu::create_configmaps(emu, "default", 4);
    emu::create_configmaps(emu, "kube-system", 4);
    let target = target("v1", "ConfigMap", Some(&["default", "kube-system"]));
    let keys = vec![
        key(&target, Some("default")),
        key(&target, Some("kube-system")),
    ];
    let mut config = policy(vec![target]);
    config.timeouts.resync = resync;
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id(name),
        config,
        Default::default(),
    );
    for key in &keys {
        wait_state(&pool, key, TargetState::Watching, Duration::from_secs(5)).await;
        wait_synced(emu, &pool, key, Duration::from_secs(5)).await;
    }
    (pool, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_13_connection_refused_backs_off_then_resumes_spread_by_jitter() {
    let emu = emu::start().await;
    let (pool, keys) = two_watch_pool(&emu, "row13", None).await;
    let before = emu.requests().len();
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 2500,
        rv: RestartRv::Continue,
    }));
    for key in &keys {
        wait_state(&pool, key, TargetState::Backoff, Duration::from_secs(3)).await;
    }
    // Changes while the server is down.
    emu.delete("v1", "ConfigMap", "default", "cm-1").unwrap();
    emu.create(configmap("kube-system", "while-down", 1))
        .unwrap();
    for key in &keys {
        wait_state(&pool, key, TargetState::Watching, Duration::from_secs(6)).await;
        wait_synced(&emu, &pool, key, Duration::from_secs(5)).await;
    }
    for key in &keys {
        let health = target_health(&pool, key).unwrap();
        assert!(
            health.errors.iter().any(|e| matches!(
                e.0,
                ErrorReason::ConnectionFailed | ErrorReason::ConnectionReset
            )),
            "{:?}",
            health.errors
        );
    }
    // Few requests reached the server after it came back (no storm), and the two watches did
    // not reconnect in the same instant.
    let after: Vec<_> = emu.requests()[before..]
        .iter()
        .filter(|r| r.resource == "configmaps" && r.user_agent.contains("watchpool-engine-test"))
        .cloned()
        .collect();
    assert!(
        after.len() <= 8,
        "{} requests after the restart",
        after.len()
    );
    let first_watch: Vec<_> = keys
        .iter()
        .map(|k| {
            after
                .iter()
                .find(|r| {
                    r.watch && r.status == 200 && r.namespace == *k.namespace.as_ref().unwrap()
                })
                .unwrap()
        })
        .collect();
    let spread = if at(first_watch[0]) > at(first_watch[1]) {
        gap_start(first_watch[1], first_watch[0])
    } else {
        gap_start(first_watch[0], first_watch[1])
    };
    assert!(
        spread >= Duration::from_millis(1),
        "reconnects synchronised to the millisecond"
    );
    finish(emu, pool).await;
}

fn gap_start(a: &kube_emulator::RequestRecord, b: &kube_emulator::RequestRecord) -> Duration {
    Duration::try_from(at(b).duration_since(at(a))).unwrap_or(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_14_restart_losing_history_relists_once_per_watch() {
    let emu = emu::start().await;
    let (pool, keys) = two_watch_pool(&emu, "row14", None).await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    // The watches go silent, the world changes behind them, then the server restarts and
    // forgets its history: their resourceVersions are now too old.
    let stall = emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .resource("configmaps")
            .count(2),
    );
    eventually(Duration::from_secs(2), "both stalled", || {
        requests(&emu, "watch", "configmaps")
            .iter()
            .filter(|w| w.faults.iter().any(|f| f == "stall_watches"))
            .count()
            == 2
    })
    .await;
    emu.delete("v1", "ConfigMap", "default", "cm-0").unwrap();
    emu.delete("v1", "ConfigMap", "kube-system", "cm-0")
        .unwrap();
    emu.faults().remove(stall);
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 50,
        rv: RestartRv::Continue,
    }));
    eventually(Duration::from_secs(8), "a relist per watch", || {
        requests(&emu, "list", "configmaps").len() >= lists_before + 2
    })
    .await;
    for key in &keys {
        wait_state(&pool, key, TargetState::Watching, Duration::from_secs(5)).await;
        wait_synced(&emu, &pool, key, Duration::from_secs(5)).await;
    }
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        lists_before + 2,
        "exactly one relist per watch"
    );
    for key in &keys {
        let health = target_health(&pool, key).unwrap();
        assert_eq!(health.relists, 1);
        assert!(
            health.errors.iter().any(|e| e.0 == ErrorReason::Gone),
            "{:?}",
            health.errors
        );
    }
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_15_rewound_resource_versions_are_bounded_by_resync() {
    let emu = emu::start().await;
    // A real API server waits for a resourceVersion it has not reached: the rewind is
    // invisible to the watch, only the periodic resync repairs the cache.
    emu.faults().add(FaultSpec::new(Fault::FutureRvPolicy {
        policy: FutureRvPolicy::Wait,
    }));
    let (pool, keys) = two_watch_pool(&emu, "row15", Some(Duration::from_secs(3))).await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 200,
        rv: RestartRv::Reset,
    }));
    emu.delete("v1", "ConfigMap", "default", "cm-2").unwrap();
    emu.create(configmap("default", "after-rewind", 1)).unwrap();
    let rewound = Instant::now();
    for key in &keys {
        wait_synced(&emu, &pool, key, Duration::from_secs(8)).await;
    }
    assert!(
        rewound.elapsed() <= Duration::from_secs(7),
        "stale for {:?}",
        rewound.elapsed()
    );
    eventually(Duration::from_secs(5), "relists counted", || {
        keys.iter()
            .all(|k| target_health(&pool, k).unwrap().relists >= 1)
    })
    .await;
    assert!(requests(&emu, "list", "configmaps").len() >= lists_before + 2);
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_26_all_connections_cut_at_once_reconnect_spread_by_jitter() {
    let emu = emu::start().await;
    let namespaces: Vec<String> = (0..40).map(|i| format!("ns-{i}")).collect();
    for ns in &namespaces {
        emu.create(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .unwrap();
    }
    let ns_refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let target = target("v1", "ConfigMap", Some(&ns_refs));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("row26"),
        policy(vec![target.clone()]),
        Default::default(),
    );
    for ns in &namespaces {
        wait_state(
            &pool,
            &key(&target, Some(ns)),
            TargetState::Watching,
            Duration::from_secs(10),
        )
        .await;
    }
    let before = requests(&emu, "watch", "configmaps").len();
    let cut = emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(40),
    );
    eventually(Duration::from_secs(5), "40 re-watches", || {
        requests(&emu, "watch", "configmaps").len() >= before + 40
    })
    .await;
    emu.faults().remove(cut);
    let rewatches = &requests(&emu, "watch", "configmaps")[before..];
    let mut per_ms = std::collections::BTreeMap::new();
    for w in rewatches {
        *per_ms.entry(at(w).as_millisecond()).or_insert(0u32) += 1;
    }
    let busiest = per_ms.values().copied().max().unwrap();
    let first = at(&rewatches[0]);
    let last = at(&rewatches[rewatches.len() - 1]);
    let spread = Duration::try_from(last.duration_since(first)).unwrap();
    eprintln!("40 re-watches spread over {spread:?}, at most {busiest} in one millisecond");
    assert!(busiest <= 8, "{busiest} re-watches in the same millisecond");
    assert!(
        spread >= Duration::from_millis(20),
        "re-watches within {spread:?}"
    );
    finish(emu, pool).await;
}
