//! The original bug: a watch stream that ends, read in a loop, must never spin.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::Duration;

use support::scripted::{self, CORE_V1, EMPTY_LIST, json};
use support::*;
use watchpool_api::{ErrorReason, TargetState};
use watchpool_engine::Pool;

/// A server whose every watch answers 200 and ends at once with no event: the EKS bug's
/// trigger. The pool must back off (CPU near zero, few requests, spaced), not spin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_23_ended_stream_read_in_a_loop_never_spins() {
    let server = scripted::start(|path, query| {
        if path == "/api/v1" {
            json(200, CORE_V1)
        } else if query.contains("watch=true") {
            json(200, "")
        } else {
            json(200, EMPTY_LIST)
        }
    })
    .await;
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&server.url).await,
        pool_id("spin"),
        policy(vec![target]),
        Default::default(),
    );
    // First watch issued: the loop is running.
    eventually(Duration::from_secs(5), "a first watch", || {
        server.seen().iter().any(|s| s.is_watch())
    })
    .await;
    let cpu_before = process_cpu();
    let seen_before = server.seen().len();
    // The measurement window itself: two seconds of a stream that keeps ending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = process_cpu() - cpu_before;
    let seen = server.seen();
    let window = &seen[seen_before..];
    eprintln!(
        "stream ending at once, 2 s: process CPU {cpu:?}, {} requests",
        window.len()
    );
    assert!(cpu < Duration::from_millis(200), "cpu {cpu:?} over 2 s");
    assert!(window.len() <= 12, "{} requests in 2 s", window.len());
    // Every watch here fails (ends empty): whatever follows one must wait a backoff step.
    for pair in seen.windows(2) {
        if pair[0].is_watch() {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(40),
                "request {gap:?} after the previous one"
            );
        }
    }
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(health.state, TargetState::Backoff);
    assert_eq!(health.last_error.unwrap().reason, ErrorReason::EmptyWatch);
    assert!(health.relists >= 1, "several empty watches in a row relist");
    pool.shutdown().await;
}
