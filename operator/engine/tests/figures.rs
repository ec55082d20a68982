//! Figures of DESIGN.md's performance table that the engine alone can show: the CPU of an idle
//! pool, the memory of metadata-only caches against full ones, the time to resume after a reset
//! and to detect a silent stream. Each test prints what it measured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::{Duration, Instant};

use kube_emulator::{Fault, FaultSpec};
use serde_json::json;
use support::emu::{self, *};
use support::*;
use watchpool_api::TargetState;
use watchpool_engine::Pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pool_of_1000_objects_uses_almost_no_cpu() {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 1000);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("idle"),
        policy(vec![target]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(10)).await;
    wait_synced(&emu, &pool, &key, Duration::from_secs(10)).await;
    let before = pool.cpu().cpu_seconds_total;
    let start = Instant::now();
    // The measurement window: three seconds of an idle watch (bookmarks every second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = pool.cpu().cpu_seconds_total - before;
    let share = used / start.elapsed().as_secs_f64();
    eprintln!(
        "idle pool, 1000 objects: {:.3} ms CPU over {:?} = {:.4} % of a core",
        used * 1e3,
        start.elapsed(),
        share * 100.0
    );
    assert!(
        share < 0.002,
        "idle pool used {:.3} % of a core",
        share * 100.0
    );
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_cache_is_at_least_five_times_smaller_than_full() {
    let emu = emu::start().await;
    let payload = "x".repeat(2048);
    for i in 0..200 {
        emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "default", "labels": {"app": "demo", "tier": "web"}},
            "data": {"payload": payload}}))
            .unwrap();
    }
    let full = configmaps("default");
    let mut meta = configmaps("default");
    meta.metadata_only = true;
    let full_key = key(&full, Some("default"));
    let meta_key = key(&meta, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("mem"),
        policy(vec![full, meta]),
        Default::default(),
    );
    wait_synced(&emu, &pool, &full_key, Duration::from_secs(10)).await;
    wait_synced(&emu, &pool, &meta_key, Duration::from_secs(10)).await;
    let bytes = |k| -> usize {
        (0..200)
            .map(|i| {
                pool.cached_raw(k, Some("default"), &format!("cm-{i}"))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let (full_bytes, meta_bytes) = (bytes(&full_key), bytes(&meta_key));
    eprintln!(
        "200 ConfigMaps of 2 KiB: full {} B/object, metadataOnly {} B/object ({:.1}x less)",
        full_bytes / 200,
        meta_bytes / 200,
        full_bytes as f64 / meta_bytes as f64
    );
    assert!(full_bytes >= 5 * meta_bytes);
    pool.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_resumes_within_initial_backoff_plus_150ms_and_silence_is_detected_within_idle_plus_1s()
 {
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 3);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let mut config = policy(vec![target]);
    config.backoff.reset_after = Duration::from_millis(500);
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("timing"),
        config,
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    let mut resumes = Vec::new();
    for _ in 0..3 {
        // A healthy while (events flowing, longer than resetAfter 500 ms) between resets: each
        // one is a first failure.
        let healthy = Instant::now();
        let bookmarks = target_health(&pool, &key).unwrap().counters.bookmarks;
        eventually(Duration::from_secs(3), "a healthy while", || {
            healthy.elapsed() >= Duration::from_millis(600)
                && target_health(&pool, &key).unwrap().counters.bookmarks > bookmarks
        })
        .await;
        let n = requests(&emu, "watch", "configmaps").len();
        emu.faults().add(
            FaultSpec::new(Fault::ResetWatches { after_ms: 0 })
                .resource("configmaps")
                .count(1),
        );
        eventually(Duration::from_secs(3), "a re-watch", || {
            requests(&emu, "watch", "configmaps").len() > n
        })
        .await;
        let watches = requests(&emu, "watch", "configmaps");
        resumes.push(gap(&watches[n - 1], &watches[n]));
        wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    }
    eprintln!("reset to resumed watch (backoff.initial 100 ms): {resumes:?}");
    for r in &resumes {
        assert!(
            *r <= Duration::from_millis(150 + 100),
            "resumed after {r:?}"
        );
    }
    emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .resource("configmaps")
            .count(1),
    );
    let silent = Instant::now();
    wait_state(&pool, &key, TargetState::Stalled, Duration::from_secs(5)).await;
    let detected = silent.elapsed();
    eprintln!("silent stream detected after {detected:?} (timeouts.idle 2 s)");
    assert!(detected <= Duration::from_secs(3));
    pool.shutdown().await;
    emu.shutdown().await;
}
