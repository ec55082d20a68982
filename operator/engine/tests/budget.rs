//! The CPU budget at pool level: a pool fed far more expensive events than its 50m budget
//! allows is held to the budget, while another pool of the same process keeps its latency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::emu::{self, *};
use support::*;
use watchpool_engine::Pool;

/// Namespaces of the two pools.
const BUSY: &str = "busy";
const CALM: &str = "calm";

fn namespace(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_over_its_budget_is_held_within_20_percent_of_50m_and_other_pools_keep_their_latency()
{
    let emu = Arc::new(emu::start().await);
    emu.create(namespace(BUSY)).unwrap();
    emu.create(namespace(CALM)).unwrap();

    // The busy pool watches its namespace 20 times (targets differing only by a field selector
    // that matches everything), so every 8 KiB write costs it 20 decodes and cache updates.
    let targets = (0..20)
        .map(|i| {
            let mut t = configmaps(BUSY);
            t.field_selector = Some(format!("metadata.name!=nothing-{i}"));
            t
        })
        .collect();
    let mut busy_config = policy(targets);
    busy_config.limits.cpu_millis = 50;
    busy_config.timeouts.idle = Duration::from_secs(30);
    let busy = Pool::spawn(
        client(&emu.url()).await,
        pool_id("busy"),
        busy_config,
        Default::default(),
    );
    let calm_target = configmaps(CALM);
    let calm_key = key(&calm_target, Some(CALM));
    let calm = Pool::spawn(
        client(&emu.url()).await,
        pool_id("calm"),
        policy(vec![calm_target]),
        Default::default(),
    );
    wait_state(
        &calm,
        &calm_key,
        watchpool_api::TargetState::Watching,
        Duration::from_secs(10),
    )
    .await;

    // A writer on its own thread: 8 KiB ConfigMaps, 400 writes a second, for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (emu, stop) = (Arc::clone(&emu), Arc::clone(&stop));
        std::thread::spawn(move || {
            let payload = "x".repeat(8 * 1024);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("cm-{}", seq % 50);
                emu.upsert(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": BUSY},
                    "data": {"seq": seq.to_string(), "payload": payload}
                }))
                .unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_micros(2500));
            }
        })
    };

    // Warm up until the meter's 10 s window is full of throttled work, then measure 10 s.
    eventually(Duration::from_secs(30), "the busy pool throttled", || {
        busy.cpu().throttled
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = busy.cpu().cpu_seconds_total;
    let started = Instant::now();

    // Meanwhile the calm pool sees each of its writes promptly.
    let mut worst = Duration::ZERO;
    for i in 0..11u64 {
        let name = format!("calm-{i}");
        emu.create(configmap(CALM, &name, i)).unwrap();
        let written = Instant::now();
        eventually(
            Duration::from_secs(5),
            "the calm pool sees its write",
            || {
                calm.cached_objects(&calm_key)
                    .is_some_and(|objects| objects.iter().any(|o| o.name == name))
            },
        )
        .await;
        worst = worst.max(written.elapsed());
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let window = started.elapsed();
    let used = busy.cpu().cpu_seconds_total - before;
    let millicores = used / window.as_secs_f64() * 1000.0;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!(
        "busy pool: {millicores:.1}m over {window:.1?} against a 50m budget; \
         calm pool's slowest write-to-cache {worst:?}"
    );
    assert!(
        (40.0..=60.0).contains(&millicores),
        "the busy pool used {millicores:.1}m over {window:?}, budget 50m"
    );
    assert!(busy.cpu().throttled);
    assert!(
        worst < Duration::from_secs(1),
        "the calm pool waited {worst:?} for a write"
    );
    assert!(!calm.cpu().throttled);
    busy.shutdown().await;
    calm.shutdown().await;
}
