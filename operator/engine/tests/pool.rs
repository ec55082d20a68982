//! The pool as a whole: reconfigure in place, churn, suspend, limits and metadata-only caches.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::Duration;

use kube_emulator::{Fault, FaultSpec};
use support::emu::{self, *};
use support::*;
use watchpool_api::{ErrorReason, TargetState};
use watchpool_engine::Pool;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_restarts_only_changed_targets_and_keeps_the_others_connections() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let cms = configmaps("default");
    let secrets = target("v1", "Secret", Some(&["default"]));
    let cm_key = key(&cms, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("reconf"),
        policy(vec![cms.clone(), secrets.clone()]),
        Default::default(),
    );
    wait_state(
        &pool,
        &cm_key,
        TargetState::Watching,
        Duration::from_secs(5),
    )
    .await;
    wait_synced(&emu, &pool, &cm_key, Duration::from_secs(5)).await;
    // Both targets listed before the counts are taken, or the first list of Secrets could land
    // after them.
    wait_state(
        &pool,
        &key(&secrets, Some("default")),
        TargetState::Watching,
        Duration::from_secs(5),
    )
    .await;
    let cm_requests = resource_requests(&emu, "configmaps");
    let secret_lists = requests(&emu, "list", "secrets").len();
    // Secrets get a label selector (changed), ConfigMaps do not; backoff and timeouts change too.
    let mut changed_secrets = secrets.clone();
    changed_secrets.label_selector = Some("app=x".into());
    let secret_key = key(&changed_secrets, Some("default"));
    let mut config = policy(vec![cms.clone(), changed_secrets]);
    config.backoff.max = Duration::from_secs(2);
    config.timeouts.idle = Duration::from_secs(3);
    pool.reconfigure(config);
    wait_state(
        &pool,
        &secret_key,
        TargetState::Watching,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        requests(&emu, "list", "secrets").len(),
        secret_lists + 1,
        "the changed target relisted"
    );
    assert!(
        requests(&emu, "watch", "secrets")
            .last()
            .unwrap()
            .query
            .contains("labelSelector=app%3Dx")
    );
    // The unchanged target kept its watch: no new request, the same stream still open.
    emu.create(configmap("default", "after-reconfigure", 1))
        .unwrap();
    wait_synced(&emu, &pool, &cm_key, Duration::from_secs(5)).await;
    let now = resource_requests(&emu, "configmaps");
    assert_eq!(
        now.len(),
        cm_requests.len(),
        "unchanged target issued new requests"
    );
    assert!(
        now.last().unwrap().watch_end.is_none(),
        "its watch is still open"
    );
    assert_eq!(pool.watch_keys().len(), 2);
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_changed_50_times_then_dropped_leaves_no_tasks_or_sockets() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    emu::create_configmaps(&emu, "kube-system", 3);
    let port = emu.addr().port();
    let client = client(&emu.url()).await;
    let tasks_before = alive_tasks();
    let fds_before = open_fds();
    let pool = Pool::spawn(
        client.clone(),
        pool_id("churn"),
        policy(vec![configmaps("default")]),
        Default::default(),
    );
    for i in 0..50u32 {
        let namespaces: &[&str] = if i % 2 == 0 {
            &["kube-system"]
        } else {
            &["default", "kube-system"]
        };
        let mut config = policy(vec![target("v1", "ConfigMap", Some(namespaces))]);
        config.backoff.initial = Duration::from_millis(100 + u64::from(i));
        pool.reconfigure(config);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = target("v1", "ConfigMap", Some(&["default", "kube-system"]));
    for ns in ["default", "kube-system"] {
        wait_state(
            &pool,
            &key(&last, Some(ns)),
            TargetState::Watching,
            Duration::from_secs(5),
        )
        .await;
    }
    assert_eq!(pool.live_tasks(), 2, "one task per watch after the churn");
    drop(pool);
    // Every watch stream of the pool is closed at once, while the client lives on.
    eventually(Duration::from_secs(3), "server watches closed", || {
        open_streams(&emu) == 0
    })
    .await;
    // What is left are the shared client's idle keep-alive connections; they go with it.
    drop(client);
    eventually(Duration::from_secs(3), "sockets closed", || {
        sockets_to_port(port) == 0
    })
    .await;
    eventually(Duration::from_secs(3), "tasks back to the baseline", || {
        alive_tasks() <= tasks_before
    })
    .await;
    eventually(Duration::from_secs(3), "fds back to the baseline", || {
        open_fds() <= fds_before
    })
    .await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_every_watch_and_resume_restarts_them() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let port = emu.addr().port();
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("suspend"),
        policy(vec![target.clone()]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    let mut config = policy(vec![target.clone()]);
    config.suspend = true;
    pool.reconfigure(config.clone());
    wait_state(&pool, &key, TargetState::Suspended, Duration::from_secs(2)).await;
    eventually(
        Duration::from_secs(3),
        "no connection while suspended",
        || sockets_to_port(port) == 0,
    )
    .await;
    eventually(Duration::from_secs(3), "no watch while suspended", || {
        open_streams(&emu) == 0
    })
    .await;
    assert_eq!(pool.live_tasks(), 0);
    let quiet = emu.requests().len();
    emu.create(configmap("default", "while-suspended", 1))
        .unwrap();
    config.suspend = false;
    pool.reconfigure(config);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert!(emu.requests().len() > quiet);
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_objects_fails_the_target_with_too_many_objects_until_the_limit_changes() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 8);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let mut config = policy(vec![target.clone()]);
    config.limits.max_objects = 5;
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("maxobj"),
        config.clone(),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Failed, Duration::from_secs(5)).await;
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(
        health.last_error.unwrap().reason,
        ErrorReason::TooManyObjects
    );
    assert!(
        pool.cached_total() <= 5,
        "the cache holds {} objects",
        pool.cached_total()
    );
    // Failed means no more requests until the policy changes.
    let before = resource_requests(&emu, "configmaps").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        resource_requests(&emu, "configmaps").len(),
        before,
        "a Failed target kept trying"
    );
    config.limits.max_objects = 100;
    pool.reconfigure(config);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    // Growing past the cap while watching fails it again.
    let mut small = policy(vec![target]);
    small.limits.max_objects = 9;
    pool.reconfigure(small);
    emu.create(configmap("default", "ninth", 9)).unwrap();
    emu.create(configmap("default", "tenth", 10)).unwrap();
    wait_state(&pool, &key, TargetState::Failed, Duration::from_secs(5)).await;
    assert!(pool.cached_total() <= 9);
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_fails_the_target_with_retries_exhausted() {
    let emu = emu::start().await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 500,
            retry_after: None,
            body: Default::default(),
            message: None,
        })
        .verbs(&["list"])
        .resource("configmaps"),
    );
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let mut config = policy(vec![target]);
    config.backoff.max_retries = 3;
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("retries"),
        config.clone(),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Failed, Duration::from_secs(5)).await;
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(
        health.last_error.unwrap().reason,
        ErrorReason::RetriesExhausted
    );
    assert_eq!(health.consecutive_failures, 3);
    assert_eq!(requests(&emu, "list", "configmaps").len(), 3);
    emu.faults().clear();
    config.backoff.max_retries = 4;
    pool.reconfigure(config);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_caches_only_object_metadata() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let mut target = configmaps("default");
    target.metadata_only = true;
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("meta"),
        policy(vec![target]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.create(configmap("default", "watched", 7)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    for name in ["cm-1", "watched"] {
        let raw = pool.cached_raw(&key, Some("default"), name).unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(meta["name"], name);
        assert!(
            meta.get("data").is_none() && !String::from_utf8_lossy(&raw).contains("\"seq\""),
            "{meta}"
        );
    }
    assert!(
        requests(&emu, "list", "configmaps")
            .iter()
            .all(|r| r.user_agent.contains("watchpool"))
    );
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_published_coalesced_not_per_event() {
    let emu = emu::start().await;
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("coalesce"),
        policy(vec![target]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    let mut rx = pool.health();
    rx.borrow_and_update();
    // Count publications over a 3 s window that covers the 500 events.
    let counter = tokio::spawn(async move {
        let end = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut n = 0u32;
        while let Ok(Ok(())) = tokio::time::timeout_at(end, rx.changed()).await {
            n += 1;
        }
        n
    });
    for i in 0..500u64 {
        emu.upsert(configmap("default", &format!("c-{}", i % 100), i))
            .unwrap();
    }
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    eventually(Duration::from_secs(3), "the counters published", || {
        let h = target_health(&pool, &key).unwrap();
        h.counters.added + h.counters.modified >= 500
    })
    .await;
    let publications = counter.await.unwrap();
    assert!(
        publications < 40,
        "{publications} publications for 500 events"
    );
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_watch_of_a_cluster_scoped_kind_becomes_cluster_wide() {
    let emu = emu::start().await;
    let namespaces = target("v1", "Namespace", Some(&["default"]));
    let key = key(&namespaces, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("cluster"),
        policy(vec![namespaces]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.create(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}),
    )
    .unwrap();
    eventually(Duration::from_secs(5), "every namespace cached", || {
        let cached = pool.cached_objects(&key).unwrap();
        cached.len() == emu.list("v1", "Namespace", None).unwrap().len()
            && cached.iter().any(|o| o.name == "extra")
    })
    .await;
    let watches = requests(&emu, "watch", "namespaces");
    assert!(
        watches.iter().all(|w| w.path == "/api/v1/namespaces"),
        "{:?}",
        watches.iter().map(|w| &w.path).collect::<Vec<_>>()
    );
    pool.shutdown().await;
    emu.shutdown().await;
}
