//! FAULTS.md rows about failed requests (status codes, deadlines, discovery), against the
//! emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::{Duration, Instant};

use kube_emulator::{Fault, FaultSpec, WatchListMode};
use serde_json::json;
use support::emu::{self, *};
use support::*;
use watchpool_api::{ErrorReason, PolicyConfig, TargetState};
use watchpool_engine::{Pool, PoolHandle, WatchKey};

async fn pool_with(emu: &kube_emulator::Emulator, name: &str, config: PolicyConfig) -> PoolHandle {
    Pool::spawn(
        client(&emu.url()).await,
        pool_id(name),
        config,
        Default::default(),
    )
}

async fn synced_pool(emu: &kube_emulator::Emulator, name: &str) -> (PoolHandle, WatchKey) {
    emu::create_configmaps(emu, "default", 5);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = pool_with(emu, name, policy(vec![target])).await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(emu, &pool, &key, Duration::from_secs(5)).await;
    (pool, key)
}

fn has_error(pool: &PoolHandle, key: &WatchKey, reason: ErrorReason) -> bool {
    target_health(pool, key).is_some_and(|h| h.errors.iter().any(|e| e.0 == reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_05_missing_response_headers_hit_the_request_deadline() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    // The first list and the first watch are accepted and never answered.
    emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 0,
            jitter_ms: 0,
            headers_never: true,
        })
        .verbs(&["list"])
        .resource("configmaps")
        .count(1),
    );
    emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 0,
            jitter_ms: 0,
            headers_never: true,
        })
        .verbs(&["watch"])
        .resource("configmaps")
        .count(1),
    );
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let started = jiff::Timestamp::now();
    let pool = pool_with(&emu, "row05", policy(vec![target])).await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(8)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    // A hung request is never answered, so the server logs only the answered retries: the
    // answered list came after the deadline (1 s) plus a backoff step, and the answered watch
    // as long after that list.
    let list = requests(&emu, "list", "configmaps")
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap();
    let watch = requests(&emu, "watch", "configmaps")
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap();
    let list_after = Duration::try_from(at(&list).duration_since(started)).unwrap();
    let watch_after = Duration::try_from(at(&watch).duration_since(at(&list))).unwrap();
    for waited in [list_after, watch_after] {
        assert!(
            waited >= Duration::from_millis(1040) && waited < Duration::from_secs(3),
            "retried after {waited:?}"
        );
    }
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(
        health
            .errors
            .iter()
            .find(|e| e.0 == ErrorReason::RequestTimeout)
            .map(|e| e.1),
        Some(2)
    );
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        1,
        "the hung list was never answered"
    );
    assert!(states_seen(&pool, &key).contains(&TargetState::Backoff));
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_08_http_410_on_watch_start_relists_and_never_retries_the_stale_rv() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row08").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    // The open watch goes silent; an object is deleted behind its back; the stream is then
    // cut and the re-watch from the stale resourceVersion answers 410.
    let stall = emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .resource("configmaps")
            .count(1),
    );
    eventually(Duration::from_secs(2), "the stall applied", || {
        requests(&emu, "watch", "configmaps")
            .iter()
            .any(|w| w.faults.iter().any(|f| f == "stall_watches"))
    })
    .await;
    emu.delete("v1", "ConfigMap", "default", "cm-0").unwrap();
    emu.faults().remove(stall);
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 410,
            retry_after: None,
            body: Default::default(),
            message: None,
        })
        .verbs(&["watch"])
        .resource("configmaps")
        .count(1),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    eventually(Duration::from_secs(5), "a relist", || {
        requests(&emu, "list", "configmaps").len() > lists_before
    })
    .await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        lists_before + 1,
        "exactly one list per 410"
    );
    let watches = requests(&emu, "watch", "configmaps");
    let gone = watches.iter().find(|w| w.status == 410).unwrap();
    let stale_rv = query_param(gone, "resourceVersion").unwrap();
    let relist = requests(&emu, "list", "configmaps")
        .into_iter()
        .last()
        .unwrap();
    assert!(relist.seq > gone.seq);
    for w in watches.iter().filter(|w| w.seq > gone.seq) {
        assert!(w.seq > relist.seq, "watch between the 410 and the relist");
        assert_ne!(
            query_param(w, "resourceVersion").unwrap(),
            stale_rv,
            "stale resourceVersion retried"
        );
    }
    assert!(has_error(&pool, &key, ErrorReason::Gone));
    assert_eq!(target_health(&pool, &key).unwrap().relists, 1);
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_09_resource_version_too_large_relists_from_scratch_once() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row09").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 504,
            retry_after: None,
            body: Default::default(),
            message: None,
        })
        .verbs(&["watch"])
        .resource("configmaps")
        .count(1),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    eventually(Duration::from_secs(5), "a relist", || {
        requests(&emu, "list", "configmaps").len() > lists_before
    })
    .await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.create(configmap("default", "after", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert_eq!(requests(&emu, "list", "configmaps").len(), lists_before + 1);
    let watches = requests(&emu, "watch", "configmaps");
    let too_large = watches.iter().find(|w| w.status == 504).unwrap();
    let relist = requests(&emu, "list", "configmaps")
        .into_iter()
        .last()
        .unwrap();
    // Backed off a little before the relist, and never re-watched in between.
    assert!(gap(too_large, &relist) >= Duration::from_millis(45));
    assert!(
        !watches
            .iter()
            .any(|w| w.seq > too_large.seq && w.seq < relist.seq)
    );
    assert!(has_error(&pool, &key, ErrorReason::ResourceVersionTooLarge));
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_11_throttled_waits_at_least_retry_after_without_relist() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 429,
            retry_after: Some(1),
            body: Default::default(),
            message: None,
        })
        .verbs(&["list"])
        .resource("configmaps")
        .count(1),
    );
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = pool_with(&emu, "row11", policy(vec![target])).await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 429,
            retry_after: Some(1),
            body: Default::default(),
            message: None,
        })
        .verbs(&["watch"])
        .resource("configmaps")
        .count(2),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    eventually(
        Duration::from_secs(8),
        "two throttled watches then a good one",
        || {
            requests(&emu, "watch", "configmaps")
                .iter()
                .filter(|w| w.status == 200)
                .count()
                >= 2
        },
    )
    .await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let all = resource_requests(&emu, "configmaps");
    for pair in all.windows(2) {
        if pair[0].status == 429 {
            assert!(
                gap(&pair[0], &pair[1]) >= Duration::from_millis(990),
                "retried {:?} after a 429",
                gap(&pair[0], &pair[1])
            );
            assert_eq!(
                pair[0].verb, pair[1].verb,
                "a 429 is retried as the same request, no relist"
            );
        }
    }
    assert_eq!(
        requests(&emu, "list", "configmaps")
            .iter()
            .filter(|r| r.status == 200)
            .count(),
        1
    );
    assert!(has_error(&pool, &key, ErrorReason::Throttled));
    assert_eq!(target_health(&pool, &key).unwrap().relists, 0);
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_12_persistent_5xx_backoff_grows_to_max_and_recovers_within_it() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row12").await;
    let first = emu.requests().len();
    let outage = emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 503,
            retry_after: None,
            body: Default::default(),
            message: None,
        })
        .verbs(&["list", "watch"])
        .resource("configmaps"),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    let outage_start = Instant::now();
    eventually(Duration::from_secs(10), "the outage to last 6 s", || {
        outage_start.elapsed() >= Duration::from_secs(6)
    })
    .await;
    emu.faults().remove(outage);
    let recovered_at = Instant::now();
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    assert!(
        recovered_at.elapsed() <= Duration::from_millis(1500),
        "recovered after {:?}",
        recovered_at.elapsed()
    );
    let during: Vec<_> = emu.requests()[first..]
        .iter()
        .filter(|r| r.user_agent.contains("watchpool-engine-test") && r.resource == "configmaps")
        .cloned()
        .collect();
    let failed: Vec<_> = during.iter().filter(|r| r.status == 503).cloned().collect();
    assert!(failed.len() >= 5, "{} failed requests", failed.len());
    assert!(
        failed.len() <= 14,
        "{} requests in a 6 s outage with max 1 s",
        failed.len()
    );
    assert_spaced_after_failures(&during, Duration::from_millis(45), |r| r.status == 503);
    // Converged: the last gaps stay near max (jitter 0.5: at least 0.5 s), relist attempts
    // included: the backoff does not reset on a relist attempt.
    for pair in failed[failed.len() - 3..].windows(2) {
        assert!(
            gap(&pair[0], &pair[1]) >= Duration::from_millis(450),
            "gap {:?}",
            gap(&pair[0], &pair[1])
        );
    }
    assert!(
        failed.iter().any(|r| r.verb == "list"),
        "relist attempted during the outage"
    );
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert!(has_error(&pool, &key, ErrorReason::ServerError));
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_16_unauthorized_backs_off_quietly_and_recovers() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row16").await;
    let outage = emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 401,
            retry_after: None,
            body: Default::default(),
            message: None,
        })
        .verbs(&["list", "watch"])
        .resource("configmaps"),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(
        &pool,
        &key,
        TargetState::Unauthorized,
        Duration::from_secs(5),
    )
    .await;
    let start = Instant::now();
    eventually(Duration::from_secs(5), "3 s of 401", || {
        start.elapsed() >= Duration::from_secs(3)
    })
    .await;
    let refused = requests(&emu, "watch", "configmaps")
        .iter()
        .chain(requests(&emu, "list", "configmaps").iter())
        .filter(|r| r.status == 401)
        .count();
    assert!(
        (3..=12).contains(&refused),
        "{refused} refused requests in ~3 s"
    );
    emu.delete("v1", "ConfigMap", "default", "cm-4").unwrap();
    emu.faults().remove(outage);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    // Quiet: the state went to Unauthorized once for the whole outage, not once per attempt.
    let seen = states_seen(&pool, &key);
    assert_eq!(
        seen.iter()
            .filter(|s| **s == TargetState::Unauthorized)
            .count(),
        1,
        "{seen:?}"
    );
    assert!(has_error(&pool, &key, ErrorReason::Unauthorized));
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_17_forbidden_kind_backs_off_while_other_targets_keep_flowing() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let cms = configmaps("default");
    let secrets = target("v1", "Secret", Some(&["default"]));
    let cm_key = key(&cms, Some("default"));
    let secret_key = key(&secrets, Some("default"));
    let pool = pool_with(&emu, "row17", policy(vec![cms, secrets])).await;
    wait_state(
        &pool,
        &secret_key,
        TargetState::Watching,
        Duration::from_secs(5),
    )
    .await;
    wait_state(
        &pool,
        &cm_key,
        TargetState::Watching,
        Duration::from_secs(5),
    )
    .await;
    let rbac = emu.faults().add(
        FaultSpec::new(Fault::Auth {})
            .verbs(&["list", "watch"])
            .resource("configmaps"),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(
        &pool,
        &cm_key,
        TargetState::Forbidden,
        Duration::from_secs(5),
    )
    .await;
    let secret_watches = requests(&emu, "watch", "secrets").len();
    for i in 0..10u64 {
        emu.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s-{i}"), "namespace": "default"}, "data": {}})).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_synced(&emu, &pool, &secret_key, Duration::from_secs(1)).await;
    }
    assert_eq!(
        requests(&emu, "watch", "secrets").len(),
        secret_watches,
        "the other target's watch was not disturbed"
    );
    assert_eq!(
        target_health(&pool, &secret_key).unwrap().state,
        TargetState::Watching
    );
    let refused: Vec<_> = resource_requests(&emu, "configmaps")
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    for pair in refused[refused.len() - 2..].windows(2) {
        assert!(
            gap(&pair[0], &pair[1]) >= Duration::from_millis(450),
            "not backed off to the cap"
        );
    }
    emu.faults().remove(rbac);
    let fixed = Instant::now();
    wait_state(
        &pool,
        &cm_key,
        TargetState::Watching,
        Duration::from_secs(3),
    )
    .await;
    assert!(
        fixed.elapsed() <= Duration::from_millis(1500),
        "recovered after {:?}",
        fixed.elapsed()
    );
    wait_synced(&emu, &pool, &cm_key, Duration::from_secs(5)).await;
    assert!(has_error(&pool, &cm_key, ErrorReason::Forbidden));
    finish(emu, pool).await;
}

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

fn widget(name: &str) -> serde_json::Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": "default"}, "spec": {"size": 1}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_18_deleted_crd_goes_not_found_quietly_and_is_picked_up_within_seconds() {
    let emu = emu::start().await;
    emu.create(widget_crd()).unwrap();
    emu.create(widget("w1")).unwrap();
    let widgets = target("example.com/v1", "Widget", Some(&["default"]));
    let key = key(&widgets, Some("default"));
    // A long backoff: pickup within seconds must come from noticing the CRD, not from retrying.
    let mut config = policy(vec![widgets]);
    config.backoff.initial = Duration::from_secs(5);
    config.backoff.max = Duration::from_secs(30);
    let pool = pool_with(&emu, "row18", config).await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    emu.delete(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "",
        "widgets.example.com",
    )
    .unwrap();
    // A real API server ends the watches of a deleted CRD's resource.
    emu.faults().add(
        FaultSpec::new(Fault::CloseWatches { after_ms: 0 })
            .resource("widgets")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::NotFound, Duration::from_secs(5)).await;
    let not_found_at = Instant::now();
    eventually(Duration::from_secs(3), "2 s in NotFound", || {
        not_found_at.elapsed() >= Duration::from_secs(2)
    })
    .await;
    assert_eq!(state(&pool, &key), Some(TargetState::NotFound));
    let discovery_attempts = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/apis/example.com/v1")
        .count();
    emu.create(widget_crd()).unwrap();
    emu.create(widget("w2")).unwrap();
    let recreated = Instant::now();
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(4)).await;
    assert!(
        recreated.elapsed() <= Duration::from_secs(2),
        "picked up after {:?}",
        recreated.elapsed()
    );
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let names: Vec<String> = pool
        .cached_objects(&key)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["w2".to_owned()], "the old CR went with its CRD");
    // Quiet: one NotFound episode, and few discovery attempts while it lasted.
    let seen = states_seen(&pool, &key);
    assert_eq!(
        seen.iter().filter(|s| **s == TargetState::NotFound).count(),
        1,
        "{seen:?}"
    );
    assert!(
        discovery_attempts <= 4,
        "{discovery_attempts} discovery requests"
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_22_streaming_list_without_end_bookmark_cannot_hang_list_and_watch_is_used() {
    let emu = emu::start().await;
    emu.faults().add(FaultSpec::new(Fault::Watchlist {
        mode: WatchListMode::Ignore,
    }));
    let (pool, key) = synced_pool(&emu, "row22").await;
    emu.create(configmap("default", "later", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let all = resource_requests(&emu, "configmaps");
    assert!(
        all.iter().all(|r| !r.query.contains("sendInitialEvents")),
        "the engine never opens a streaming list"
    );
    assert_eq!(requests(&emu, "list", "configmaps").len(), 1);
    finish(emu, pool).await;
}
