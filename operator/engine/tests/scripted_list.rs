//! Paged lists against a scripted server: continue tokens, and an expired one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::scripted::{self, CORE_V1, json};
use support::*;
use watchpool_api::TargetState;
use watchpool_engine::Pool;

fn page(items: &[(&str, &str)], rv: &str, next: Option<&str>) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(name, uid)| {
            format!(r#"{{"metadata":{{"name":"{name}","namespace":"default","uid":"{uid}","resourceVersion":"{rv}"}}}}"#)
        })
        .collect();
    let cont = next
        .map(|c| format!(r#","continue":"{c}""#))
        .unwrap_or_default();
    format!(
        r#"{{"kind":"ConfigMapList","metadata":{{"resourceVersion":"{rv}"{cont}}},"items":[{}]}}"#,
        items.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_continue_token_restarts_the_list_from_scratch_once() {
    let expired_once = std::sync::Arc::new(AtomicBool::new(false));
    let expired = expired_once.clone();
    let server = scripted::start(move |path, query| {
        if path == "/api/v1" {
            json(200, CORE_V1)
        } else if query.contains("watch=true") {
            // A watch that stays open with nothing to say (ended by the test).
            json(200, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"resourceVersion\":\"20\"}}}\n")
        } else if query.contains("continue=second") {
            if expired.swap(true, Ordering::SeqCst) {
                json(200, &page(&[("c", "u3")], "20", None))
            } else {
                json(410, r#"{"kind":"Status","code":410,"reason":"Expired","message":"the continue token has expired"}"#)
            }
        } else {
            json(200, &page(&[("a", "u1"), ("b", "u2")], "20", Some("second")))
        }
    })
    .await;
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&server.url).await,
        pool_id("paged"),
        policy(vec![target]),
        Default::default(),
    );
    eventually(Duration::from_secs(5), "three objects cached", || {
        pool.cached_objects(&key).is_some_and(|o| o.len() == 3)
    })
    .await;
    let lists: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/configmaps") && !s.is_watch())
        .map(|s| s.query.clone())
        .collect();
    assert_eq!(lists.len(), 4, "{lists:?}");
    assert!(lists.iter().all(|q| q.contains("limit=500")));
    assert!(!lists[0].contains("continue") && lists[1].contains("continue=second"));
    assert!(!lists[2].contains("continue") && lists[3].contains("continue=second"));
    let watch = server.seen().into_iter().find(|s| s.is_watch()).unwrap();
    assert!(
        watch.query.contains("resourceVersion=20"),
        "{}",
        watch.query
    );
    let health = target_health(&pool, &key).unwrap();
    assert_eq!(
        health.consecutive_failures, 0,
        "an expired continue token is not a failure"
    );
    assert_ne!(health.state, TargetState::Backoff);
    pool.shutdown().await;
}
