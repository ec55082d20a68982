//! The watch guard closes kube-runtime's tight re-watch loop on empty watches (FAULTS.md row 2,
//! and row 23 for the operator's own WatchPolicy watch, which is a kube-runtime watcher).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher;
use kube_emulator::{Fault, FaultSpec};
use support::emu::{self, *};
use watchpool_engine::client::{ClientOptions, build_client};

/// Runs a bare kube-runtime watcher on configmaps for `window` while every watch answers 200
/// and closes at once; returns the watch requests it made during the window.
async fn empty_watch_requests(guarded: bool) -> usize {
    let emu = emu::start().await;
    let options = ClientOptions {
        watch_guard: guarded,
        user_agent: "watchpool-engine-test".into(),
        ..ClientOptions::default()
    };
    let client = build_client(kube::Config::new(emu.url().parse().unwrap()), &options)
        .await
        .unwrap();
    emu.faults()
        .add(FaultSpec::new(Fault::EmptyWatch {}).resource("configmaps"));
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while stream.next().await.is_some() {}
    });
    let window = Duration::from_secs(3);
    // A fixed measuring window, not a wait for a condition.
    tokio::time::sleep(window).await;
    task.abort();
    requests(&emu, "watch", "configmaps").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_turns_kube_runtime_empty_watch_loop_into_backoff() {
    let bare = empty_watch_requests(false).await;
    let guarded = empty_watch_requests(true).await;
    eprintln!(
        "watch requests in 3 s of empty watches: bare kube-runtime {bare}, guarded {guarded}"
    );
    // Guarded: 200 ms, 400 ms, 800 ms, 1.6 s (jittered down by up to half) — a handful.
    assert!(
        guarded <= 10,
        "guarded watcher made {guarded} watch requests in 3 s"
    );
    assert!(
        bare > 5 * guarded,
        "the bare watcher loops ({bare} requests) where the guarded one backs off ({guarded})"
    );
}
