//! Every fault knob, with the reaction of a kube-rs watcher/reflector (or of the wire) asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a test failure

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Widget, client_for, ended_cleanly, parse_response, raw_exchange, requests_of, start,
    start_with, test_config, wait_until,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{CustomResourceExt, Error as KubeError, ResourceExt};
use kube_emulator::{
    Emulator, ErrorBody, Fault, FaultSpec, FutureRvPolicy, RequestRecord, RestartRv, WatchListMode,
};
use serde_json::json;

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"v": "0"}})
}

struct Watched {
    store: Store<ConfigMap>,
    errors: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A reflector over ConfigMaps in `default`, with the default backoff; counts stream errors.
async fn reflect(client: kube::Client, cfg: watcher::Config) -> Watched {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (store, writer) = reflector::store::<ConfigMap>();
    let errors = Arc::new(AtomicUsize::new(0));
    let errs = errors.clone();
    let stream = reflector(writer, watcher(api, cfg).default_backoff());
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        while let Some(item) = s.next().await {
            if item.is_err() {
                errs.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    store.wait_until_ready().await.unwrap();
    Watched {
        store,
        errors,
        task,
    }
}

fn watches(emu: &Emulator) -> Vec<RequestRecord> {
    requests_of(emu, "watch", "configmaps")
}

fn lists(emu: &Emulator) -> usize {
    requests_of(emu, "list", "configmaps").len()
}

async fn sees(w: &Watched, name: &str) {
    let store = w.store.clone();
    let name = name.to_string();
    wait_until(
        &format!("reflector sees {name}"),
        Duration::from_secs(15),
        move || store.state().iter().any(|c| c.name_any() == name),
    )
    .await;
}

fn rv_param(r: &RequestRecord) -> Option<String> {
    r.query
        .split('&')
        .find_map(|p| p.strip_prefix("resourceVersion="))
        .map(str::to_string)
}

#[tokio::test]
async fn drop_watches_aborts_and_the_watcher_resumes_from_its_resource_version_without_relisting() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_until("second watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    emu.create(cm("after-drop")).unwrap();
    sees(&w, "after-drop").await;
    let ws = watches(&emu);
    assert_eq!(ws[0].watch_end.as_deref(), Some("dropped"));
    assert_eq!(ws[0].faults, ["drop_watches"]);
    assert!(
        rv_param(&ws[1]).is_some_and(|rv| !rv.is_empty() && rv != "0"),
        "re-watch from the last RV"
    );
    assert_eq!(lists(&emu), 1, "no relist after a dropped connection");
}

#[tokio::test]
async fn drop_and_close_differ_on_the_wire() {
    let (emu, _client) = start().await;
    let path = "/api/v1/namespaces/default/configmaps?watch=true";
    emu.faults()
        .add(FaultSpec::new(Fault::DropWatches { after_ms: 100 }).count(1));
    let (raw, eof) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    assert!(
        eof && !ended_cleanly(&raw),
        "a dropped watch has no terminating chunk"
    );
    emu.faults()
        .add(FaultSpec::new(Fault::CloseWatches { after_ms: 100 }).count(1));
    let (raw, eof) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    assert!(
        eof && ended_cleanly(&raw),
        "a closed watch ends with the terminating chunk"
    );
}

#[tokio::test]
async fn close_watches_makes_the_watcher_rewatch_without_relisting() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults()
        .add(FaultSpec::new(Fault::CloseWatches { after_ms: 0 }).count(1));
    wait_until("second watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    emu.create(cm("after-close")).unwrap();
    sees(&w, "after-close").await;
    assert_eq!(watches(&emu)[0].watch_end.as_deref(), Some("closed"));
    assert_eq!(lists(&emu), 1);
    assert_eq!(
        w.errors.load(Ordering::SeqCst),
        0,
        "a clean close is not an error"
    );
}

#[tokio::test]
async fn stalled_watch_is_abandoned_after_the_client_idle_timeout() {
    let (emu, client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::StallWatches { secs: None }).count(1));
    let w = reflect(client, watcher::Config::default().timeout(1)).await;
    // The stalled stream sends nothing; the client gives up after timeout + 5 s and re-watches.
    wait_until("re-watch after the stall", Duration::from_secs(15), || {
        watches(&emu).len() >= 2
    })
    .await;
    emu.create(cm("after-stall")).unwrap();
    sees(&w, "after-stall").await;
    let ws = watches(&emu);
    assert_eq!(ws[0].faults, ["stall_watches"]);
    assert_eq!(
        ws[0].events, 0,
        "nothing was sent while stalled, not even bookmarks"
    );
    assert_eq!(lists(&emu), 1);
}

#[tokio::test]
async fn watch_error_410_makes_the_watcher_relist_exactly_once() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults().add(
        FaultSpec::new(Fault::WatchError {
            code: 410,
            close: true,
        })
        .count(1),
    );
    emu.create(cm("after-410")).unwrap();
    sees(&w, "after-410").await;
    wait_until("second watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    assert_eq!(lists(&emu), 2, "exactly one relist");
    assert_eq!(watches(&emu)[0].watch_end.as_deref(), Some("error"));
}

#[tokio::test]
async fn watch_error_500_is_surfaced_and_the_watch_resumes() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults().add(
        FaultSpec::new(Fault::WatchError {
            code: 500,
            close: true,
        })
        .count(1),
    );
    wait_until("error surfaced", Duration::from_secs(5), || {
        w.errors.load(Ordering::SeqCst) >= 1
    })
    .await;
    emu.create(cm("after-500")).unwrap();
    sees(&w, "after-500").await;
    assert!(watches(&emu).len() >= 2);
}

#[tokio::test]
async fn http_500_on_watch_start_is_surfaced_and_retried() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 500,
            retry_after: None,
            body: ErrorBody::Json,
            message: None,
        })
        .verbs(&["watch"])
        .count(1),
    );
    let w = reflect(client, watcher::Config::default()).await;
    emu.create(cm("after-start-error")).unwrap();
    sees(&w, "after-start-error").await;
    assert!(
        w.errors.load(Ordering::SeqCst) >= 1,
        "WatchStartFailed surfaced"
    );
    let ws = watches(&emu);
    assert_eq!(ws[0].status, 500);
    assert_eq!(ws[1].status, 200);
    assert_eq!(lists(&emu), 1);
}

#[tokio::test]
async fn http_429_with_retry_after_is_absorbed_by_the_client() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 429,
            retry_after: Some(1),
            body: ErrorBody::Text,
            message: None,
        })
        .verbs(&["list"])
        .count(1),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let started = std::time::Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    let ls = requests_of(&emu, "list", "configmaps");
    assert_eq!(ls.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    // The wire shape: plain text with Retry-After.
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 429,
            retry_after: Some(2),
            body: ErrorBody::Text,
            message: None,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        None,
        Duration::from_secs(5),
    )
    .await;
    let (status, headers, body) = parse_response(&raw);
    assert_eq!(status, 429);
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "2"));
    assert!(String::from_utf8_lossy(&body).starts_with("Too many requests"));
    // And the JSON shape carries details.retryAfterSeconds.
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 429,
            retry_after: Some(3),
            body: ErrorBody::Json,
            message: None,
        })
        .count(1),
    );
    let (status, v) = common::raw_json(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(v["reason"], "TooManyRequests");
    assert_eq!(v["details"]["retryAfterSeconds"], 3);
}

#[tokio::test]
async fn http_504_names_resource_version_too_large() {
    let (emu, _client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 504,
            retry_after: None,
            body: ErrorBody::Json,
            message: None,
        })
        .count(1),
    );
    let (status, v) = common::raw_json(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
    )
    .await;
    assert_eq!(status, 504);
    assert_eq!(
        v["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
}

#[tokio::test]
async fn compaction_makes_a_lagging_watcher_relist() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    // Stall the watch so the watcher stays behind, write, compact, then cut the stream.
    let stall = emu
        .faults()
        .add(FaultSpec::new(Fault::StallWatches { secs: None }).count(1));
    wait_until("stall applied", Duration::from_secs(5), || {
        watches(&emu)[0]
            .faults
            .contains(&"stall_watches".to_string())
    })
    .await;
    for i in 0..3 {
        emu.create(cm(&format!("c{i}"))).unwrap();
    }
    emu.faults().add(FaultSpec::new(Fault::Compact {
        keep_last_n: Some(1),
        below_rv: None,
    }));
    emu.faults().remove(stall);
    emu.faults()
        .add(FaultSpec::new(Fault::DropWatches { after_ms: 0 }).count(1));
    sees(&w, "c0").await;
    sees(&w, "c2").await;
    assert_eq!(
        lists(&emu),
        2,
        "the resume RV was compacted away: one relist"
    );
}

#[tokio::test]
async fn future_resource_version_policy_wait_delivers_only_later_events() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    emu.faults().add(FaultSpec::new(Fault::FutureRvPolicy {
        policy: FutureRvPolicy::Wait,
    }));
    let target = emu.resource_version() + 2;
    let mut s = api
        .watch(&WatchParams::default(), &target.to_string())
        .await
        .unwrap()
        .boxed();
    for i in 0..3 {
        emu.create(cm(&format!("f{i}"))).unwrap();
    }
    let ev = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "f2"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn restart_refuses_connections_then_the_watcher_relists() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    // The watcher lags behind a write made just before the restart.
    emu.faults()
        .add(FaultSpec::new(Fault::StallWatches { secs: None }).count(1));
    wait_until("stall applied", Duration::from_secs(5), || {
        watches(&emu)[0]
            .faults
            .contains(&"stall_watches".to_string())
    })
    .await;
    emu.create(cm("before-restart")).unwrap();
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 1000,
        rv: RestartRv::Continue,
    }));
    // While down, connections are refused.
    let deadline = std::time::Instant::now() + Duration::from_millis(900);
    let mut refused = false;
    while !refused && std::time::Instant::now() < deadline {
        refused = tokio::net::TcpStream::connect(emu.addr()).await.is_err();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "nothing listens while the server is down");
    emu.create(cm("after-restart")).unwrap();
    sees(&w, "before-restart").await;
    sees(&w, "after-restart").await;
    assert_eq!(lists(&emu), 2, "history was lost: one relist");
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.method == "FAULT" && r.faults == ["restart"])
    );
}

#[tokio::test]
async fn restart_with_jump_and_reset_moves_the_counter() {
    let (emu, _client) = start().await;
    let before = emu.resource_version();
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 0,
        rv: RestartRv::Jump,
    }));
    assert!(emu.resource_version() >= before + 1_000_000);
    let high = emu.resource_version();
    emu.faults().add(FaultSpec::new(Fault::Restart {
        down_ms: 0,
        rv: RestartRv::Reset,
    }));
    assert!(emu.resource_version() < high);
    let client = client_for(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    wait_until_ok(|| async { api.list(&ListParams::default()).await.is_ok() }).await;
}

async fn wait_until_ok<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn latency_delays_and_headers_never_withholds_the_response() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 300,
            jitter_ms: 0,
            headers_never: false,
        })
        .verbs(&["get"])
        .count(1),
    );
    emu.create(cm("slow")).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let t = std::time::Instant::now();
    api.get("slow").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 0,
            jitter_ms: 0,
            headers_never: true,
        })
        .verbs(&["list"])
        .count(1),
    );
    let (raw, eof) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        None,
        Duration::from_millis(700),
    )
    .await;
    assert!(raw.is_empty() && !eof, "no byte of the response was sent");
    // Other requests are served meanwhile.
    api.get("slow").await.unwrap();
}

#[tokio::test]
async fn conflict_next_fails_the_next_writes_with_409() {
    let (emu, client) = start().await;
    emu.create(cm("cf")).unwrap();
    emu.faults()
        .add(FaultSpec::new(Fault::ConflictNext { n: 2 }).name("cf"));
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let p = Patch::Merge(json!({"data": {"v": "1"}}));
    for _ in 0..2 {
        match api
            .patch("cf", &PatchParams::default(), &p)
            .await
            .unwrap_err()
        {
            KubeError::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
            other => panic!("{other:?}"),
        }
    }
    api.patch("cf", &PatchParams::default(), &p).await.unwrap();
}

#[tokio::test]
async fn watchlist_reject_and_ignore_modes() {
    let (emu, _client) = start().await;
    emu.create(cm("wl")).unwrap();
    let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1";
    emu.faults().add(
        FaultSpec::new(Fault::Watchlist {
            mode: WatchListMode::Reject,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    assert_eq!(parse_response(&raw).0, 422);
    emu.faults().add(
        FaultSpec::new(Fault::Watchlist {
            mode: WatchListMode::Ignore,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    let body = String::from_utf8(parse_response(&raw).2).unwrap();
    assert!(body.contains("\"ADDED\""));
    assert!(
        !body.contains("initial-events-end"),
        "ignore mode never sends the end bookmark"
    );
    let (raw, _) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    assert!(
        String::from_utf8(parse_response(&raw).2)
            .unwrap()
            .contains("k8s.io/initial-events-end")
    );
}

#[tokio::test]
async fn bookmark_interval_knob_speeds_up_or_silences_bookmarks() {
    let (emu, _client) = start_with(kube_emulator::EmulatorConfig {
        bookmark_interval: Duration::from_secs(60),
        ..test_config()
    })
    .await;
    let path = "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=1";
    emu.faults().add(
        FaultSpec::new(Fault::BookmarkInterval {
            secs: Some(0.1),
            off: false,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    let n = String::from_utf8(parse_response(&raw).2)
        .unwrap()
        .matches("BOOKMARK")
        .count();
    assert!(n >= 2, "fast bookmarks: {n}");
    emu.faults().add(
        FaultSpec::new(Fault::BookmarkInterval {
            secs: Some(0.1),
            off: true,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(emu.addr(), "GET", path, &[], None, Duration::from_secs(5)).await;
    assert_eq!(
        String::from_utf8(parse_response(&raw).2)
            .unwrap()
            .matches("BOOKMARK")
            .count(),
        0
    );
}

#[tokio::test]
async fn slow_consumer_beyond_its_buffer_is_dropped_and_the_watcher_recovers() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults()
        .add(FaultSpec::new(Fault::SlowWatchBuffer { events: 5 }).count(1));
    emu.faults()
        .add(FaultSpec::new(Fault::CloseWatches { after_ms: 0 }).count(1));
    wait_until("second watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    // The second watch has the small buffer; stall it while 20 events queue up.
    emu.faults()
        .add(FaultSpec::new(Fault::StallWatches { secs: Some(0.3) }).count(1));
    wait_until("stall applied", Duration::from_secs(5), || {
        watches(&emu)[1]
            .faults
            .contains(&"stall_watches".to_string())
    })
    .await;
    for i in 0..20 {
        emu.create(cm(&format!("s{i}"))).unwrap();
    }
    wait_until("slow consumer dropped", Duration::from_secs(10), || {
        watches(&emu)[1].watch_end.as_deref() == Some("slow_consumer")
    })
    .await;
    sees(&w, "s19").await;
    assert_eq!(w.store.state().len(), 20, "nothing lost");
}

#[tokio::test]
async fn crd_establish_delay_and_names_conflict() {
    let (emu, client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::CrdEstablishDelay { ms: 300 }).count(1));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let established = |c: &CustomResourceDefinition| {
        c.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    };
    assert!(!established(&created));
    let cond = kube::runtime::conditions::is_crd_established();
    tokio::time::timeout(
        Duration::from_secs(5),
        kube::runtime::wait::await_condition(crds.clone(), "widgets.ex.dev", cond),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(emu.resources().iter().any(|r| r.kind == "Widget"));

    crds.delete("widgets.ex.dev", &Default::default())
        .await
        .unwrap();
    emu.faults()
        .add(FaultSpec::new(Fault::CrdNamesConflict {}).count(1));
    let refused = crds
        .create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let conds = refused.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "NamesAccepted"
        && c.status == "False"
        && c.reason.as_deref() == Some("MultipleNamesNotAllowed")));
    assert!(
        !emu.resources().iter().any(|r| r.kind == "Widget"),
        "not served"
    );
}

#[tokio::test]
async fn auth_denies_chosen_verbs_and_resources_with_403() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::Auth {})
            .verbs(&["list", "watch"])
            .resource("configmaps"),
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    match api.list(&ListParams::default()).await.unwrap_err() {
        KubeError::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert!(
                s.message.contains("cannot list resource \"configmaps\""),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    emu.create(cm("allowed")).unwrap();
    api.get("allowed").await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    secrets.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn malformed_line_is_an_error_for_the_client_and_the_stream_goes_on() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults()
        .add(FaultSpec::new(Fault::MalformedLine { text: None }).count(1));
    wait_until("decode error surfaced", Duration::from_secs(5), || {
        w.errors.load(Ordering::SeqCst) >= 1
    })
    .await;
    emu.create(cm("after-garbage")).unwrap();
    sees(&w, "after-garbage").await;
    assert_eq!(lists(&emu), 1);
    // On the wire: a line that is not JSON.
    emu.faults().add(
        FaultSpec::new(Fault::MalformedLine {
            text: Some("{oops".into()),
        })
        .user_agent("raw-client")
        .count(1),
    );
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        &[("User-Agent", "raw-client")],
        None,
        Duration::from_secs(5),
    )
    .await;
    let body = String::from_utf8(parse_response(&raw).2).unwrap();
    assert!(body.lines().any(|l| l == "{oops"));
}

#[tokio::test]
async fn oversized_and_endless_lines() {
    let (emu, _client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::OversizedLine {
            bytes: Some(2 << 20),
            endless: false,
        })
        .count(1),
    );
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        &[],
        None,
        Duration::from_secs(10),
    )
    .await;
    let body = parse_response(&raw).2;
    let longest = body.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest >= 2 << 20, "a line of at least 2 MiB: {longest}");
    let line = body
        .split(|b| *b == b'\n')
        .find(|l| l.len() == longest)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(line).expect("the huge line is still valid JSON");

    emu.faults().add(
        FaultSpec::new(Fault::OversizedLine {
            bytes: None,
            endless: true,
        })
        .count(1),
    );
    let (raw, eof) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        &[],
        None,
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        !eof,
        "an endless line never ends, not even at timeoutSeconds"
    );
    let headers_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.len() - headers_end > 1 << 20);
    assert!(
        !raw[headers_end + 4..].windows(2).any(|w| w == b"}\n"),
        "no newline-terminated event"
    );
}

#[tokio::test]
async fn drip_sends_a_partial_line_slowly() {
    let (emu, _client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::Drip {
            bytes_per_sec: 10.0,
        })
        .count(1),
    );
    let (raw, eof) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        &[],
        None,
        Duration::from_millis(1500),
    )
    .await;
    assert!(!eof, "a dripping stream ignores timeoutSeconds");
    let headers_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let chunks = &raw[headers_end + 4..];
    // One byte per chunk: "1\r\nX\r\n" = 6 bytes each, ~15 in 1.5 s.
    let n = chunks.len() / 6;
    assert!((3..=30).contains(&n), "about ten bytes a second, got {n}");
}

#[tokio::test]
async fn empty_watch_answers_200_and_ends_at_once() {
    let (emu, _client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::EmptyWatch {}).count(1));
    emu.create(cm("e")).unwrap();
    let (raw, eof) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true",
        &[],
        None,
        Duration::from_secs(5),
    )
    .await;
    let (status, _, body) = parse_response(&raw);
    assert!(eof && ended_cleanly(&raw));
    assert_eq!(status, 200);
    assert!(
        body.is_empty(),
        "no event at all, not even the synthetic ADDED"
    );
    let rec = emu
        .requests()
        .into_iter()
        .find(|r| r.faults == ["empty_watch"])
        .unwrap();
    assert_eq!(rec.watch_end.as_deref(), Some("empty"));
}

#[tokio::test]
async fn scope_by_user_agent_and_probability_zero() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 500,
            retry_after: None,
            body: ErrorBody::Json,
            message: None,
        })
        .user_agent("curl-like"),
    );
    emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 503,
            retry_after: None,
            body: ErrorBody::Json,
            message: None,
        })
        .probability(0.0),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.list(&ListParams::default()).await.unwrap();
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[("User-Agent", "curl-like/1")],
        None,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse_response(&raw).0, 500);
    let hits: Vec<u64> = emu.faults().list().iter().map(|f| f.hits).collect();
    assert_eq!(hits, [1, 0]);
}

#[tokio::test]
async fn empty_watches_in_a_row_are_retried_by_the_watcher_until_one_lasts() {
    let (emu, client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::EmptyWatch {}).count(3));
    let w = reflect(client, watcher::Config::default()).await;
    emu.create(cm("after-empty")).unwrap();
    sees(&w, "after-empty").await;
    let ws = watches(&emu);
    let empties = ws
        .iter()
        .filter(|r| r.watch_end.as_deref() == Some("empty"))
        .count();
    assert_eq!(empties, 3);
    assert_eq!(
        lists(&emu),
        1,
        "kube-rs re-watches after an empty stream, without relisting"
    );
}

#[tokio::test]
async fn watchlist_reject_is_surfaced_and_retried_by_a_streaming_watcher() {
    let (emu, client) = start().await;
    emu.create(cm("wl-r")).unwrap();
    emu.faults().add(
        FaultSpec::new(Fault::Watchlist {
            mode: WatchListMode::Reject,
        })
        .count(1),
    );
    let w = reflect(client, watcher::Config::default().streaming_lists()).await;
    assert_eq!(w.store.state().len(), 1);
    assert!(w.errors.load(Ordering::SeqCst) >= 1, "the 422 is surfaced");
    assert_eq!(watches(&emu)[0].status, 422);
}

#[tokio::test]
async fn watchlist_without_its_end_bookmark_keeps_a_streaming_watcher_unready() {
    let (emu, client) = start().await;
    emu.create(cm("wl-i")).unwrap();
    emu.faults().add(
        FaultSpec::new(Fault::Watchlist {
            mode: WatchListMode::Ignore,
        })
        .count(1),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (store, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        while s.next().await.is_some() {}
    });
    wait_until("the initial event was sent", Duration::from_secs(5), || {
        watches(&emu)
            .first()
            .is_some_and(|r| r.faults == ["watchlist"])
    })
    .await;
    let ready = tokio::time::timeout(Duration::from_millis(800), store.wait_until_ready()).await;
    assert!(
        ready.is_err(),
        "never ready without the initial-events-end bookmark"
    );
    // Ending that stream lets a normal streaming list complete.
    emu.faults()
        .add(FaultSpec::new(Fault::CloseWatches { after_ms: 0 }).count(1));
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.state().len(), 1);
    task.abort();
}

#[tokio::test]
async fn bookmarks_move_the_resume_point_past_other_namespaces_writes() {
    let (emu, client) = start().await;
    emu.faults().add(FaultSpec::new(Fault::BookmarkInterval {
        secs: Some(0.1),
        off: false,
    }));
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    let last_event_rv = emu.resource_version();
    emu.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}}))
        .unwrap();
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "elsewhere"}})).unwrap();
    let current = emu.resource_version();
    wait_until(
        "a bookmark at the current RV was sent",
        Duration::from_secs(5),
        || watches(&emu)[0].last_bookmark_rv == Some(current.to_string()),
    )
    .await;
    emu.faults()
        .add(FaultSpec::new(Fault::DropWatches { after_ms: 0 }).count(1));
    wait_until("re-watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    let resumed: u64 = rv_param(&watches(&emu)[1]).unwrap().parse().unwrap();
    assert!(
        resumed > last_event_rv && resumed == current,
        "resumed from the bookmark's RV {resumed}"
    );
    assert_eq!(lists(&emu), 1);
    drop(w);
}

#[tokio::test]
async fn oversized_valid_line_is_accepted_by_kube_rs() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults().add(
        FaultSpec::new(Fault::OversizedLine {
            bytes: Some(1 << 20),
            endless: false,
        })
        .count(1),
    );
    emu.create(cm("after-big-line")).unwrap();
    sees(&w, "after-big-line").await;
    assert_eq!(
        w.errors.load(Ordering::SeqCst),
        0,
        "kube-rs reads lines of any size"
    );
    assert_eq!(watches(&emu).len(), 1);
}

#[tokio::test]
async fn drip_is_caught_by_the_client_idle_timeout() {
    let (emu, client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::Drip { bytes_per_sec: 2.0 }).count(1));
    let w = reflect(client, watcher::Config::default().timeout(1)).await;
    wait_until("re-watch after the drip", Duration::from_secs(15), || {
        watches(&emu).len() >= 2
    })
    .await;
    emu.create(cm("after-drip")).unwrap();
    sees(&w, "after-drip").await;
    assert_eq!(watches(&emu)[0].faults, ["drip"]);
    assert_eq!(lists(&emu), 1);
}

#[tokio::test]
async fn forbidden_list_is_surfaced_and_retried_by_the_watcher() {
    let (emu, client) = start().await;
    emu.faults().add(
        FaultSpec::new(Fault::Auth {})
            .verbs(&["list"])
            .resource("configmaps")
            .count(2),
    );
    emu.create(cm("behind-rbac")).unwrap();
    let w = reflect(client, watcher::Config::default()).await;
    assert_eq!(w.store.state().len(), 1);
    assert!(w.errors.load(Ordering::SeqCst) >= 2);
    let statuses: Vec<u16> = requests_of(&emu, "list", "configmaps")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [403, 403, 200]);
}

#[tokio::test]
async fn reset_watches_ends_the_connection_with_a_tcp_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (emu, _client) = start().await;
    emu.faults()
        .add(FaultSpec::new(Fault::ResetWatches { after_ms: 200 }).count(1));
    let mut s = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    s.write_all(
        b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Err(std::io::ErrorKind::ConnectionReset),
        "a reset, not an orderly close"
    );
}

#[tokio::test]
async fn withheld_response_is_released_when_its_fault_is_removed() {
    let (emu, client) = start().await;
    let id = emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 0,
            jitter_ms: 0,
            headers_never: true,
        })
        .verbs(&["list"])
        .count(1),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let pending = tokio::spawn(async move {
        api.list(&ListParams::default())
            .await
            .map(|l| l.items.len())
    });
    wait_until("the list was withheld", Duration::from_secs(5), || {
        emu.faults()
            .list()
            .iter()
            .any(|f| f.id == id && f.hits == 1)
    })
    .await;
    assert!(!pending.is_finished());
    emu.faults().remove(id);
    let n = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn reset_watches_make_the_watcher_resume_without_relisting() {
    let (emu, client) = start().await;
    let w = reflect(client, watcher::Config::default()).await;
    wait_until("watch open", Duration::from_secs(5), || {
        watches(&emu).len() == 1
    })
    .await;
    emu.faults()
        .add(FaultSpec::new(Fault::ResetWatches { after_ms: 0 }).count(1));
    wait_until("second watch", Duration::from_secs(10), || {
        watches(&emu).len() >= 2
    })
    .await;
    emu.create(cm("after-reset")).unwrap();
    sees(&w, "after-reset").await;
    let ws = watches(&emu);
    assert_eq!(ws[0].watch_end.as_deref(), Some("reset"));
    assert!(rv_param(&ws[1]).is_some_and(|rv| !rv.is_empty() && rv != "0"));
    assert_eq!(lists(&emu), 1);
}

#[tokio::test]
async fn a_watch_stalled_from_its_start_still_sends_its_initial_events_afterwards() {
    let (emu, _client) = start().await;
    emu.create(cm("i1")).unwrap();
    emu.create(cm("i2")).unwrap();
    emu.faults()
        .add(FaultSpec::new(Fault::StallWatches { secs: Some(0.3) }).count(1));
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        &[],
        None,
        Duration::from_secs(5),
    )
    .await;
    let body = String::from_utf8(parse_response(&raw).2).unwrap();
    assert_eq!(body.matches("\"ADDED\"").count(), 2, "{body}");
    assert!(body.contains("\"i1\"") && body.contains("\"i2\""));
}
