//! Watch protocol: replay, bookmarks, timeouts, 410, selectors, WatchList, watchers,
//! reflectors and a controller that settles.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a test failure

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Widget, WidgetSpec, client_for, install_widget_crd, requests_of, start, start_with,
    test_config, wait_until,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Error as KubeError, ResourceExt};
use kube_emulator::EmulatorConfig;
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {"v": "0"}})
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<ConfigMap>, KubeError>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .unwrap()
}

#[tokio::test]
async fn watch_from_a_resource_version_replays_later_changes_in_order() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    emu.create(cm("a", json!({}))).unwrap();
    let rv = emu.resource_version().to_string();
    emu.create(cm("b", json!({}))).unwrap();
    emu.patch_merge(
        "v1",
        "ConfigMap",
        "default",
        "a",
        json!({"data": {"v": "1"}}),
        false,
    )
    .unwrap();
    emu.delete("v1", "ConfigMap", "default", "b").unwrap();
    let mut s = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    let mut last = rv.parse::<u64>().unwrap();
    for _ in 0..3 {
        let (kind, obj) = match next_event(&mut s).await {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            other => panic!("unexpected {other:?}"),
        };
        let erv: u64 = obj.resource_version().unwrap().parse().unwrap();
        assert!(erv > last, "strictly increasing resourceVersions");
        last = erv;
        seen.push(format!("{kind} {}", obj.name_any()));
    }
    assert_eq!(seen, ["ADDED b", "MODIFIED a", "DELETED b"]);
    // Live events follow.
    emu.create(cm("c", json!({}))).unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(o) if o.name_any() == "c"));
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_synthetic_added_events() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    emu.create(cm("x", json!({}))).unwrap();
    emu.create(cm("y", json!({}))).unwrap();
    let mut s = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    for _ in 0..2 {
        match next_event(&mut s).await {
            WatchEvent::Added(o) => names.push(o.name_any()),
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["x", "y"]);
}

#[tokio::test]
async fn bookmarks_carry_type_meta_and_the_stream_resource_version() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = emu.resource_version().to_string();
    let mut s = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..Default::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    emu.create(cm("bm", json!({}))).unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
    match next_event(&mut s).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.types.kind, "ConfigMap");
            assert_eq!(b.types.api_version, "v1");
            assert_eq!(
                b.metadata.resource_version,
                emu.resource_version().to_string()
            );
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream_cleanly() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let s = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(10), s.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        events.iter().all(|e| e.is_ok()),
        "a clean end is not an error: {events:?}"
    );
    wait_until(
        "watch recorded as timed out",
        Duration::from_secs(5),
        || {
            requests_of(&emu, "watch", "configmaps")
                .iter()
                .any(|r| r.watch_end.as_deref() == Some("timeout"))
        },
    )
    .await;
}

#[tokio::test]
async fn resource_version_older_than_history_gets_a_410_error_event() {
    let (emu, client) = start_with(EmulatorConfig {
        history: 3,
        ..test_config()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let old = emu.resource_version().to_string();
    for i in 0..6 {
        emu.create(cm(&format!("h{i}"), json!({}))).unwrap();
    }
    let mut s = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut s).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // A future resourceVersion is expired by default too.
    let future = (emu.resource_version() + 100).to_string();
    let mut s = api
        .watch(&WatchParams::default(), &future)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Error(e) if e.code == 410));
}

#[tokio::test]
async fn selector_watches_see_objects_start_and_stop_matching() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    emu.create(cm("sel", json!({"team": "a"}))).unwrap();
    let rv = emu.resource_version().to_string();
    let mut s = api
        .watch(&WatchParams::default().labels("team=b"), &rv)
        .await
        .unwrap()
        .boxed();
    emu.patch_merge(
        "v1",
        "ConfigMap",
        "default",
        "sel",
        json!({"metadata": {"labels": {"team": "b"}}}),
        false,
    )
    .unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(o) if o.labels()["team"] == "b"));
    emu.patch_merge(
        "v1",
        "ConfigMap",
        "default",
        "sel",
        json!({"data": {"v": "2"}}),
        false,
    )
    .unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Modified(_)));
    emu.patch_merge(
        "v1",
        "ConfigMap",
        "default",
        "sel",
        json!({"metadata": {"labels": {"team": "c"}}}),
        false,
    )
    .unwrap();
    assert!(
        matches!(next_event(&mut s).await, WatchEvent::Deleted(o) if o.labels()["team"] == "c")
    );
    // Other namespaces are not seen by a namespaced watch.
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .unwrap();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o", "namespace": "other", "labels": {"team": "b"}}})).unwrap();
    emu.create(cm("sel2", json!({"team": "b"}))).unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(o) if o.name_any() == "sel2"));
}

#[tokio::test]
async fn watchlist_sends_initial_events_then_the_end_bookmark() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    emu.create(cm("wl1", json!({}))).unwrap();
    emu.create(cm("wl2", json!({}))).unwrap();
    let cfg = watcher::Config::default().streaming_lists();
    let store = {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector(writer, watcher(api.clone(), cfg)).applied_objects();
        tokio::spawn(async move {
            let mut s = stream.boxed();
            while s.next().await.is_some() {}
        });
        reader
    };
    store.wait_until_ready().await.unwrap();
    assert_eq!(store.state().len(), 2);
    assert!(
        requests_of(&emu, "list", "configmaps").is_empty(),
        "a streaming list needs no list request"
    );
    emu.create(cm("wl3", json!({}))).unwrap();
    wait_until("reflector sees wl3", Duration::from_secs(5), || {
        store.state().len() == 3
    })
    .await;

    // Validation: sendInitialEvents without resourceVersionMatch=NotOlderThan is 422.
    let req = http::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true",
    )
    .body(Vec::new())
    .unwrap();
    match client.request_text(req).await.unwrap_err() {
        KubeError::Api(s) => assert_eq!(s.code, 422),
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn reflector_follows_every_change() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api, watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        while s.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    for i in 0..20 {
        emu.create(cm(&format!("r{i}"), json!({}))).unwrap();
    }
    for i in 0..10 {
        emu.delete("v1", "ConfigMap", "default", &format!("r{i}"))
            .unwrap();
    }
    emu.patch_merge(
        "v1",
        "ConfigMap",
        "default",
        "r15",
        json!({"data": {"v": "9"}}),
        false,
    )
    .unwrap();
    wait_until("reflector converges", Duration::from_secs(5), || {
        reader.state().len() == 10
            && reader
                .state()
                .iter()
                .any(|c| c.name_any() == "r15" && c.data.as_ref().unwrap()["v"] == "9")
    })
    .await;
    assert_eq!(
        requests_of(&emu, "list", "configmaps").len(),
        1,
        "one initial list, no relist"
    );
    task.abort();
}

#[tokio::test]
async fn controller_settles_without_a_write_loop() {
    let (emu, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &Widget::new(
                &format!("c{i}"),
                WidgetSpec {
                    size: i,
                    color: String::new(),
                },
            ),
        )
        .await
        .unwrap();
    }
    let reconciles = Arc::new(AtomicUsize::new(0));
    struct Ctx {
        api: Api<Widget>,
        count: Arc<AtomicUsize>,
    }
    async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, KubeError> {
        ctx.count.fetch_add(1, Ordering::SeqCst);
        let status = json!({"apiVersion": "ex.dev/v1", "kind": "Widget", "status": {"ready": true, "observed": w.metadata.generation.unwrap_or(0)}});
        ctx.api
            .patch_status(
                &w.name_any(),
                &PatchParams::apply("widget-ctl").force(),
                &Patch::Apply(&status),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &KubeError, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        count: reconciles.clone(),
    });
    let ctl = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    wait_until("all widgets ready", Duration::from_secs(10), || {
        emu.list("ex.dev/v1", "Widget", Some("default"))
            .unwrap()
            .iter()
            .all(|w| w["status"]["ready"] == true)
    })
    .await;
    // Over the next second the number of status writes must stay put.
    let writes = || requests_of(&emu, "patch", "widgets/status").len();
    let settled = writes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        assert!(
            writes() <= settled + 3,
            "status writes keep coming: a write loop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = writes();
    assert!(
        total <= 6,
        "at most two status writes per widget, got {total}"
    );
    assert!(reconciles.load(Ordering::SeqCst) <= 6);
    ctl.abort();
}

#[tokio::test]
async fn metadata_watcher_receives_partial_object_metadata() {
    let (emu, client) = start().await;
    let api: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(client, "default");
    emu.create(cm("m1", json!({"k": "v"}))).unwrap();
    let mut s = watcher(api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("m1"));
    assert_eq!(first.labels()["k"], "v");
}

#[tokio::test]
async fn all_namespaces_watch_and_list_span_namespaces() {
    let (emu, _client) = start().await;
    let client = client_for(&emu).await;
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n2"}}))
        .unwrap();
    emu.create(cm("a1", json!({}))).unwrap();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a2", "namespace": "n2"}})).unwrap();
    let api: Api<ConfigMap> = Api::all(client);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let rv = emu.resource_version().to_string();
    let mut s = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a3", "namespace": "n2"}})).unwrap();
    assert!(
        matches!(next_event(&mut s).await, WatchEvent::Added(o) if o.namespace().as_deref() == Some("n2"))
    );
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_ends_their_watches() {
    let (emu, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &Widget::new("gone", WidgetSpec::default()),
    )
    .await
    .unwrap();
    let rv = emu.resource_version().to_string();
    let mut s = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    emu.delete(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "",
        "widgets.ex.dev",
    )
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ev, WatchEvent::Deleted(w) if w.name_any() == "gone"));
    let end = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends with its resource");
    match api.list(&ListParams::default()).await.unwrap_err() {
        KubeError::Api(st) => assert_eq!(st.code, 404),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_watches_each_receive_every_event_in_order() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = emu.resource_version().to_string();
    let mut streams = Vec::new();
    for _ in 0..300 {
        streams.push(
            api.watch(&WatchParams::default(), &rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    wait_until("all watches open", Duration::from_secs(10), || {
        emu.stats().open_watches == 300
    })
    .await;
    for i in 0..20 {
        emu.create(cm(&format!("fan{i:02}"), json!({}))).unwrap();
    }
    let results = futures::future::join_all(streams.into_iter().map(|mut s| async move {
        let mut names = Vec::new();
        while names.len() < 20 {
            match tokio::time::timeout(Duration::from_secs(20), s.next()).await {
                Ok(Some(Ok(WatchEvent::Added(o)))) => names.push(o.name_any()),
                Ok(Some(Ok(WatchEvent::Bookmark(_)))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        names
    }))
    .await;
    let expected: Vec<String> = (0..20).map(|i| format!("fan{i:02}")).collect();
    assert!(results.iter().all(|names| *names == expected));
}

#[tokio::test]
async fn timeout_seconds_zero_means_the_default_not_an_immediate_end() {
    let (emu, _client) = start().await;
    let addr = emu.addr();
    let task = tokio::spawn(async move {
        common::raw_exchange(
            addr,
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=0",
            &[],
            None,
            Duration::from_secs(30),
        )
        .await
    });
    wait_until("watch open", Duration::from_secs(5), || {
        emu.stats().open_watches == 1
    })
    .await;
    emu.create(cm("still-open", json!({}))).unwrap();
    wait_until("still open after a write", Duration::from_secs(5), || {
        emu.stats().open_watches == 1 && emu.requests()[0].watch_end.is_none()
    })
    .await;
    assert!(!task.is_finished());
    task.abort();
}
