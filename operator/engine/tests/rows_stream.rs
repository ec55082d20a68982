//! FAULTS.md rows about open watch streams, against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::Duration;

use kube_emulator::{Fault, FaultSpec};
use support::emu::{self, *};
use support::*;
use watchpool_api::{ErrorReason, TargetState};
use watchpool_engine::{Pool, PoolHandle, WatchKey};

/// A pool of ConfigMaps in `default`, synced with 5 objects.
async fn synced_pool(emu: &kube_emulator::Emulator, name: &str) -> (PoolHandle, WatchKey) {
    emu::create_configmaps(emu, "default", 5);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id(name),
        policy(vec![target]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(emu, &pool, &key, Duration::from_secs(5)).await;
    (pool, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_01_clean_close_rewatches_from_last_rv_without_list() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row01").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    for round in 0..3u64 {
        let created = emu
            .create(configmap("default", &format!("new-{round}"), round))
            .unwrap();
        let created_rv: u64 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
        let id = emu.faults().add(
            FaultSpec::new(Fault::CloseWatches { after_ms: 0 })
                .resource("configmaps")
                .count(1),
        );
        eventually(Duration::from_secs(5), "a re-watch", || {
            requests(&emu, "watch", "configmaps").len() as u64 >= round + 2
        })
        .await;
        emu.faults().remove(id);
        let watches = requests(&emu, "watch", "configmaps");
        let last = watches.last().unwrap();
        let rv: u64 = query_param(last, "resourceVersion")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rv >= created_rv,
            "re-watch from the last resourceVersion seen ({rv} < {created_rv})"
        );
        // Re-watch at once: well under the backoff's initial step.
        let prev = &watches[watches.len() - 2];
        assert!(
            gap(prev, last) < Duration::from_millis(1100),
            "re-watch waited {:?}",
            gap(prev, last)
        );
    }
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        lists_before,
        "a clean close must not relist"
    );
    // Every watch asks for bookmarks and a lifetime drawn from [0.9, 1.0] x timeouts.watch (30 s).
    for w in requests(&emu, "watch", "configmaps") {
        assert_eq!(
            query_param(&w, "allowWatchBookmarks").as_deref(),
            Some("true")
        );
        let secs: u32 = query_param(&w, "timeoutSeconds").unwrap().parse().unwrap();
        assert!((27..=30).contains(&secs), "timeoutSeconds={secs}");
    }
    eventually(Duration::from_secs(2), "reconnects counted", || {
        target_health(&pool, &key).unwrap().reconnects >= 3
    })
    .await;
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(health.state, TargetState::Watching);
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.relists, 0);
    assert!(health.last_error.is_none(), "a clean close is not an error");
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_02_empty_watch_backs_off_then_relists() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row02").await;
    let fault = emu
        .faults()
        .add(FaultSpec::new(Fault::EmptyWatch {}).resource("configmaps"));
    // Kick the open watch so the next ones hit the fault.
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    let start = requests(&emu, "watch", "configmaps").len();
    eventually(Duration::from_secs(8), "several empty watches", || {
        requests(&emu, "watch", "configmaps").len() >= start + 6
    })
    .await;
    // Objects deleted and added while the watches are empty.
    emu.delete("v1", "ConfigMap", "default", "cm-0").unwrap();
    emu.create(configmap("default", "during", 1)).unwrap();
    let health = target_health(&pool, &key).unwrap();
    assert!(matches!(
        health.state,
        TargetState::Backoff | TargetState::Listing | TargetState::Watching
    ));
    assert!(health.relists >= 1, "several empty watches in a row relist");
    let all = resource_requests(&emu, "configmaps");
    let tail = &all[all
        .iter()
        .position(|r| r.watch_end.as_deref() == Some("empty"))
        .unwrap()..];
    assert_spaced_after_failures(tail, Duration::from_millis(45), |r| {
        r.watch_end.as_deref() == Some("empty")
    });
    emu.faults().remove(fault);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert!(states_seen(&pool, &key).contains(&TargetState::Backoff));
    let reasons: Vec<ErrorReason> = target_health(&pool, &key)
        .unwrap()
        .errors
        .iter()
        .map(|e| e.0)
        .collect();
    assert!(reasons.contains(&ErrorReason::EmptyWatch), "{reasons:?}");
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_03_reset_mid_stream_resumes_from_same_rv_without_relist() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row03").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    let watches_before = requests(&emu, "watch", "configmaps").len();
    let rv_seen = target_health(&pool, &key)
        .unwrap()
        .resource_version
        .unwrap();
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    eventually(Duration::from_secs(5), "a re-watch", || {
        requests(&emu, "watch", "configmaps").len() > watches_before
    })
    .await;
    let watches = requests(&emu, "watch", "configmaps");
    let dropped = &watches[watches_before - 1];
    let resumed = &watches[watches_before];
    assert_eq!(dropped.watch_end.as_deref(), Some("dropped"));
    let resumed_rv: u64 = query_param(resumed, "resourceVersion")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        resumed_rv >= rv_seen.parse::<u64>().unwrap(),
        "resumed from an older resourceVersion"
    );
    // One backoff step (initial 100 ms, jitter 0.5): at least 50 ms, well under a second.
    let waited = gap(dropped, resumed);
    assert!(
        waited >= Duration::from_millis(45) && waited < Duration::from_millis(1000),
        "waited {waited:?}"
    );
    emu.create(configmap("default", "after", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        lists_before,
        "a reset must not relist"
    );
    let seen = states_seen(&pool, &key);
    assert!(
        seen.ends_with(&[
            TargetState::Watching,
            TargetState::Backoff,
            TargetState::Watching
        ]),
        "{seen:?}"
    );
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(
        health.last_error.unwrap().reason,
        ErrorReason::ConnectionReset
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_04_half_open_stream_detected_by_idle_timeout_and_dropped() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row04").await;
    let port = emu.addr().port();
    let watches_before = requests(&emu, "watch", "configmaps").len();
    // The open watch goes silent: no events, no bookmarks, no FIN.
    let stall = emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .resource("configmaps")
            .count(1),
    );
    let started = std::time::Instant::now();
    wait_state(&pool, &key, TargetState::Stalled, Duration::from_secs(5)).await;
    let detected = started.elapsed();
    // idle is 2 s; bookmarks come every second before the stall.
    assert!(
        detected >= Duration::from_millis(1500) && detected <= Duration::from_secs(4),
        "detected after {detected:?}"
    );
    emu.faults().remove(stall);
    // Objects deleted while the stream was dead are gone after the resume.
    emu.delete("v1", "ConfigMap", "default", "cm-1").unwrap();
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let watches = requests(&emu, "watch", "configmaps");
    assert!(watches.len() > watches_before);
    // The silent socket was dropped by the engine, not reused: only one watch is open now.
    eventually(Duration::from_secs(2), "one connection left", || {
        sockets_to_port(port) <= 2
    })
    .await;
    eventually(Duration::from_secs(2), "server sees one open watch", || {
        emu.stats().open_watches == 1
    })
    .await;
    assert_eq!(
        target_health(&pool, &key)
            .unwrap()
            .last_error
            .unwrap()
            .reason,
        ErrorReason::IdleTimeout
    );
    assert_eq!(
        target_health(&pool, &key).unwrap().relists,
        0,
        "resume from the last resourceVersion"
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_06_slow_drip_still_hits_the_idle_deadline() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let mut config = policy(vec![target]);
    config.limits.max_event_size = 4096;
    // Every watch drips a partial line, a byte every 0.5 s.
    let drip = emu
        .faults()
        .add(FaultSpec::new(Fault::Drip { bytes_per_sec: 2.0 }).resource("configmaps"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("row06"),
        config,
        Default::default(),
    );
    let started = std::time::Instant::now();
    wait_state(&pool, &key, TargetState::Stalled, Duration::from_secs(6)).await;
    let detected = started.elapsed();
    assert!(
        detected <= Duration::from_secs(4),
        "idle deadline fired after {detected:?}"
    );
    emu.faults().remove(drip);
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(6)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert!(
        target_health(&pool, &key)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.0 == ErrorReason::IdleTimeout)
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_07_expired_in_stream_relists_once_and_drops_vanished_objects() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row07").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    // Stall the watch, change the world behind its back, then expire it.
    let stall = emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .resource("configmaps")
            .count(1),
    );
    emu.delete("v1", "ConfigMap", "default", "cm-2").unwrap();
    emu.delete("v1", "ConfigMap", "default", "cm-3").unwrap();
    emu.create(configmap("default", "fresh", 9)).unwrap();
    emu.faults().remove(stall);
    emu.faults().add(
        FaultSpec::new(Fault::WatchError {
            code: 410,
            close: true,
        })
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
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(health.relists, 1);
    assert!(health.errors.iter().any(|e| e.0 == ErrorReason::Gone));
    let names: Vec<String> = pool
        .cached_objects(&key)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert!(!names.contains(&"cm-2".to_owned()) && names.contains(&"fresh".to_owned()));
    // The watch after the relist starts from the list's resourceVersion, not the stale one.
    let lists = requests(&emu, "list", "configmaps");
    let relist = lists.last().unwrap();
    let watch_after = requests(&emu, "watch", "configmaps")
        .into_iter()
        .find(|w| w.seq > relist.seq)
        .unwrap();
    assert!(
        query_param(&watch_after, "resourceVersion")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_error_500_in_stream_backs_off_then_relists_after_several() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row10").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    let watches_before = requests(&emu, "watch", "configmaps").len();
    // One ERROR 500: one backoff step, re-watch from the same resourceVersion, no relist.
    emu.faults().add(
        FaultSpec::new(Fault::WatchError {
            code: 500,
            close: true,
        })
        .resource("configmaps")
        .count(1),
    );
    eventually(Duration::from_secs(5), "a re-watch", || {
        requests(&emu, "watch", "configmaps").len() > watches_before
    })
    .await;
    let watches = requests(&emu, "watch", "configmaps");
    assert!(
        gap(&watches[watches_before - 1], &watches[watches_before]) >= Duration::from_millis(45)
    );
    assert_eq!(requests(&emu, "list", "configmaps").len(), lists_before);
    // Every watch errors: after several failures in a row, a relist.
    let always = emu.faults().add(
        FaultSpec::new(Fault::WatchError {
            code: 500,
            close: true,
        })
        .resource("configmaps"),
    );
    eventually(
        Duration::from_secs(8),
        "a relist after several failures",
        || requests(&emu, "list", "configmaps").len() > lists_before,
    )
    .await;
    emu.faults().remove(always);
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let all = resource_requests(&emu, "configmaps");
    assert_spaced_after_failures(&all[watches_before..], Duration::from_millis(45), |r| {
        r.faults.iter().any(|f| f == "watch_error")
    });
    assert!(
        target_health(&pool, &key)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.0 == ErrorReason::ServerError)
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_19_malformed_lines_are_counted_then_reconnect_with_backoff() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row19").await;
    let watches_before = requests(&emu, "watch", "configmaps").len();
    // Once: counted, the stream goes on.
    emu.faults().add(
        FaultSpec::new(Fault::MalformedLine { text: None })
            .resource("configmaps")
            .count(1),
    );
    eventually(Duration::from_secs(3), "a decode error counted", || {
        target_health(&pool, &key).unwrap().counters.decode_errors >= 1
    })
    .await;
    emu.create(configmap("default", "after-one", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    assert_eq!(requests(&emu, "list", "configmaps").len(), 1);
    // Repeatedly (three bad lines in every stream): reconnect with backoff, never a tight loop.
    let repeated: Vec<_> = (0..3)
        .map(|_| {
            emu.faults()
                .add(FaultSpec::new(Fault::MalformedLine { text: None }).resource("configmaps"))
        })
        .collect();
    eventually(Duration::from_secs(8), "reconnects", || {
        requests(&emu, "watch", "configmaps").len() >= watches_before + 4
    })
    .await;
    for id in repeated {
        emu.faults().remove(id);
    }
    let all = resource_requests(&emu, "configmaps");
    assert_spaced_after_failures(&all[watches_before..], Duration::from_millis(45), |r| {
        r.faults.iter().filter(|f| *f == "malformed_line").count() >= 3
    });
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.create(configmap("default", "after-many", 2)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let health = target_health(&pool, &key).unwrap();
    assert!(
        health
            .errors
            .iter()
            .any(|e| e.0 == ErrorReason::DecodeError),
        "{:?}",
        health.errors
    );
    let watches = requests(&emu, "watch", "configmaps");
    assert!(
        watches.len() < watches_before + 20,
        "{} watches: a tight loop",
        watches.len()
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_20_oversized_or_endless_line_is_refused_and_the_connection_closed() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let mut config = policy(vec![target]);
    config.limits.max_event_size = 64 * 1024;
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("row20"),
        config,
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    let watches_before = requests(&emu, "watch", "configmaps").len();
    emu.faults().add(
        FaultSpec::new(Fault::OversizedLine {
            bytes: Some(1024 * 1024),
            endless: false,
        })
        .resource("configmaps")
        .count(1),
    );
    eventually(Duration::from_secs(5), "the huge line refused", || {
        target_health(&pool, &key)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.0 == ErrorReason::EventTooLarge)
    })
    .await;
    emu.faults().add(
        FaultSpec::new(Fault::OversizedLine {
            bytes: None,
            endless: true,
        })
        .resource("configmaps")
        .count(1),
    );
    eventually(Duration::from_secs(6), "the endless line refused", || {
        target_health(&pool, &key)
            .unwrap()
            .errors
            .iter()
            .find(|e| e.0 == ErrorReason::EventTooLarge)
            .is_some_and(|e| e.1 >= 2)
    })
    .await;
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    emu.create(configmap("default", "after", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(5)).await;
    let watches = requests(&emu, "watch", "configmaps");
    assert!(watches.len() >= watches_before + 2);
    // The refused streams were closed by the engine.
    assert!(
        watches[watches_before..watches.len() - 1]
            .iter()
            .all(|w| w.watch_end.is_some())
    );
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_21_slow_consumer_dropped_by_the_server_loses_nothing() {
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row21").await;
    emu.faults()
        .add(FaultSpec::new(Fault::SlowWatchBuffer { events: 2 }).resource("configmaps"));
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    for i in 0..300u64 {
        emu.upsert(configmap("default", &format!("burst-{}", i % 50), i))
            .unwrap();
        if i % 7 == 0 {
            let _ = emu.delete(
                "v1",
                "ConfigMap",
                "default",
                &format!("burst-{}", (i + 3) % 50),
            );
        }
    }
    wait_synced(&emu, &pool, &key, Duration::from_secs(10)).await;
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(health.state, TargetState::Watching);
    finish(emu, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_03_resets_in_a_row_never_relist() {
    // A reset says nothing about the resourceVersion: however many come in a row (a load
    // balancer cutting every flow), the watch resumes from the same point and never lists.
    let emu = emu::start().await;
    let (pool, key) = synced_pool(&emu, "row03many").await;
    let lists_before = requests(&emu, "list", "configmaps").len();
    let watches_before = requests(&emu, "watch", "configmaps").len();
    emu.faults().add(
        FaultSpec::new(Fault::ResetWatches { after_ms: 0 })
            .resource("configmaps")
            .count(6),
    );
    // The open watch and five re-watches are cut; the sixth re-watch stays open.
    eventually(Duration::from_secs(15), "six resets and a re-watch", || {
        requests(&emu, "watch", "configmaps").len() >= watches_before + 6
    })
    .await;
    emu.create(configmap("default", "after-resets", 1)).unwrap();
    wait_synced(&emu, &pool, &key, Duration::from_secs(10)).await;
    assert_eq!(
        requests(&emu, "list", "configmaps").len(),
        lists_before,
        "resets in a row must not relist"
    );
    assert_eq!(target_health(&pool, &key).unwrap().relists, 0);
    finish(emu, pool).await;
}
