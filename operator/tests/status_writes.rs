//! Status writes of a busy pool are bounded by the status interval: 20 s of constant churn
//! with `--status-interval 2s` must not write status on every event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests: a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_writes_status_at_most_once_per_interval() {
    let c = cluster().await;
    c.policy("default", "busy", configmap_spec());
    let op = start_operator(&c, &["--status-interval", "2s"], &[]).await;
    wait_for("Ready=True", Duration::from_secs(20), || {
        c.condition("default", "busy", "Ready")
            .is_some_and(|r| r["status"] == "True")
    })
    .await;
    let before = c.status_writes("default", "busy");

    // 20 s of churn: a create or an update every 20 ms (about 1000 events).
    let churn = Duration::from_secs(20);
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < churn {
        // The object count climbs from 0 to 40 and back, an update in between each step.
        let k = i % 80;
        let (name, delete) = if k < 40 {
            (format!("cm-{k}"), false)
        } else {
            (format!("cm-{}", k - 40), true)
        };
        if delete {
            c.emu.delete("v1", "ConfigMap", "default", &name).unwrap();
        } else {
            c.emu
                .upsert(json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                    "data": {"n": i.to_string()}
                }))
                .unwrap();
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writes = c.status_writes("default", "busy") - before;
    eprintln!("{i} changes, {writes} status writes in {churn:?}");
    // One write per 2 s interval at most (10), plus a little slack for the interval edges.
    assert!(
        writes <= 12,
        "{writes} status writes for {i} changes in {churn:?}"
    );
    // Counters are still reported, just batched.
    assert!(
        writes >= 5,
        "only {writes} status writes: counters were not reported"
    );
    let expected = c
        .emu
        .list("v1", "ConfigMap", Some("default"))
        .unwrap()
        .len();
    wait_for(
        "the object count to settle",
        Duration::from_secs(10),
        || {
            c.get_policy("default", "busy")
                .is_some_and(|p| p["status"]["objects"] == expected)
        },
    )
    .await;
    // The operator saw every event.
    let (_, metrics) = op.get("/metrics").await;
    assert!(
        metrics.contains(
            "watchpool_status_writes_total{policy_namespace=\"default\",policy=\"busy\"}"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_does_not_rewrite_its_status() {
    let c = cluster().await;
    c.emu
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "namespace": "default"}}))
        .unwrap();
    c.policy("default", "idle", configmap_spec());
    let _op = start_operator(&c, &["--status-interval", "1s"], &[]).await;
    wait_for(
        "Ready=True with its object",
        Duration::from_secs(20),
        || {
            c.condition("default", "idle", "Ready")
                .is_some_and(|r| r["status"] == "True")
                && c.get_policy("default", "idle")
                    .is_some_and(|p| p["status"]["objects"] == 1)
        },
    )
    .await;
    // Let the first counters settle, then watch for 8 s (bookmarks arrive meanwhile).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = c.status_writes("default", "idle");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let writes = c.status_writes("default", "idle") - before;
    // Bookmark times alone wait for the slow refresh (60 s); at most a CPU reading moves.
    assert!(writes <= 1, "{writes} status writes by an idle pool in 8 s");
}
