//! The `/emulator/` control API over HTTP, discovery and errors on the wire, and the
//! `kube-emulator` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a test failure

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{install_widget_crd, parse_response, raw_exchange, raw_json, start, wait_until};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::discovery::Discovery;
use kube::{Client, Config};
use kube_emulator::RequestRecord;
use serde_json::{Value, json};

#[tokio::test]
async fn control_api_adds_lists_and_removes_faults() {
    let (emu, _client) = start().await;
    let addr = emu.addr();
    let spec =
        r#"{"type":"http_error","code":503,"verbs":["list"],"resource":"configmaps","count":1}"#;
    let (status, v) = raw_json(addr, "POST", "/emulator/faults", Some(spec)).await;
    assert_eq!(status, 200);
    let id = v["id"].as_u64().unwrap();
    let (_, list) = raw_json(addr, "GET", "/emulator/faults", None).await;
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["spec"]["type"], "http_error");
    assert_eq!(list[0]["remaining"], 1);
    let (status, body) = raw_json(addr, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    let (status, _) = raw_json(addr, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!(status, 200, "count exhausted");
    let (status, _) = raw_json(addr, "DELETE", &format!("/emulator/faults/{id}"), None).await;
    assert_eq!(status, 200);
    let (_, list) = raw_json(addr, "GET", "/emulator/faults", None).await;
    assert_eq!(list, json!([]));
    // An array adds several; DELETE /emulator/faults clears them.
    let (_, v) = raw_json(
        addr,
        "POST",
        "/emulator/faults",
        Some(r#"[{"type":"auth","verbs":["delete"]},{"type":"empty_watch"}]"#),
    )
    .await;
    assert_eq!(v["ids"].as_array().unwrap().len(), 2);
    raw_json(addr, "DELETE", "/emulator/faults", None).await;
    assert!(emu.faults().list().is_empty());
    let (status, v) = raw_json(
        addr,
        "POST",
        "/emulator/faults",
        Some(r#"{"type":"no_such_fault"}"#),
    )
    .await;
    assert_eq!((status, v["reason"].as_str()), (400, Some("BadRequest")));
}

#[tokio::test]
async fn control_api_serves_requests_stats_and_objects() {
    let (emu, client) = start().await;
    let addr = emu.addr();
    let (status, created) = raw_json(
        addr,
        "POST",
        "/emulator/objects",
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"via-control"},"data":{"a":"1"}}"#),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["metadata"]["namespace"], "default");
    let (status, _) = raw_json(
        addr,
        "POST",
        "/emulator/objects",
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"via-control"},"data":{"a":"2"}}"#),
    )
    .await;
    assert_eq!(status, 200, "an existing object is replaced");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    assert_eq!(
        api.get("via-control").await.unwrap().data.unwrap()["a"],
        "2"
    );
    api.list(&ListParams::default()).await.unwrap();
    raw_exchange(
        addr,
        "GET",
        "/api/v1/namespaces/default/configmaps/via-control",
        &[("User-Agent", "probe/1")],
        None,
        Duration::from_secs(5),
    )
    .await;

    let (raw, _) = raw_exchange(
        addr,
        "GET",
        "/emulator/requests",
        &[],
        None,
        Duration::from_secs(5),
    )
    .await;
    let (_, headers, body) = parse_response(&raw);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.contains("ndjson"))
    );
    let recs: Vec<RequestRecord> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let list = recs
        .iter()
        .find(|r| r.verb == "list" && r.resource == "configmaps")
        .unwrap();
    assert_eq!(list.status, 200);
    assert!(!list.watch && list.watch_end.is_none());
    let probe = recs.iter().find(|r| r.user_agent == "probe/1").unwrap();
    assert_eq!(
        (
            probe.verb.as_str(),
            probe.name.as_str(),
            probe.namespace.as_str()
        ),
        ("get", "via-control", "default")
    );
    assert!(
        recs.iter().all(|r| !r.path.starts_with("/emulator")),
        "control requests are not logged"
    );

    let (_, stats) = raw_json(addr, "GET", "/emulator/stats", None).await;
    assert_eq!(stats["requests_by_verb_resource"]["list configmaps"], 1);
    assert_eq!(stats["open_watches"], 0);
    assert!(stats["resource_version"].as_u64().unwrap() >= 5);
}

#[tokio::test]
async fn open_watches_are_counted_in_stats() {
    let (emu, _client) = start().await;
    let addr = emu.addr();
    let task = tokio::spawn(async move {
        raw_exchange(
            addr,
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true",
            &[],
            None,
            Duration::from_secs(30),
        )
        .await
    });
    wait_until("watch counted", Duration::from_secs(5), || {
        emu.stats().open_watches == 1
    })
    .await;
    task.abort();
    wait_until("watch closed", Duration::from_secs(5), || {
        emu.stats().open_watches == 0
    })
    .await;
    assert_eq!(emu.requests()[0].watch_end.as_deref(), Some("client"));
}

#[tokio::test]
async fn discovery_aggregated_and_legacy_find_crd_groups() {
    let (_emu, client) = start().await;
    install_widget_crd(&client).await;
    let info = client.apiserver_version().await.unwrap();
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "35"));
    let agg = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(
        agg.has_group("ex.dev"),
        "aggregated discovery lists the CRD group"
    );
    assert!(agg.has_group("apps") && agg.has_group("coordination.k8s.io"));
    let legacy = Discovery::new(client).run().await.unwrap();
    let g = legacy.get("ex.dev").unwrap();
    let (ar, caps) = g.recommended_kind("Widget").unwrap();
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status")
    );
}

#[tokio::test]
async fn discovery_content_type_follows_accept() {
    let (emu, _client) = start().await;
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/apis?timeout=32s",
        &[("Accept", accept)],
        None,
        Duration::from_secs(5),
    )
    .await;
    let (status, headers, body) = parse_response(&raw);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "content-type"
        && v == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["metadata"]["name"] != ""),
        "no core group in /apis"
    );
    let (raw, _) = raw_exchange(
        emu.addr(),
        "GET",
        "/api",
        &[("Accept", accept)],
        None,
        Duration::from_secs(5),
    )
    .await;
    let v: Value = serde_json::from_slice(&parse_response(&raw).2).unwrap();
    let core = &v["items"][0]["versions"][0];
    assert_eq!(core["version"], "v1");
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "configmaps")
    );
    let (status, v) = raw_json(emu.addr(), "GET", "/api", None).await;
    assert_eq!((status, v["kind"].as_str()), (200, Some("APIVersions")));
    let (status, v) = raw_json(emu.addr(), "GET", "/apis/apps/v1", None).await;
    assert_eq!(status, 200);
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "replicasets")
    );
}

#[tokio::test]
async fn errors_on_the_wire_are_status_objects() {
    let (emu, _client) = start().await;
    let (status, v) = raw_json(
        emu.addr(),
        "GET",
        "/api/v1/namespaces/default/configmaps/nope",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["message"], "configmaps \"nope\" not found");
    assert_eq!(
        v["details"],
        json!({"name": "nope", "group": "", "kind": "configmaps"})
    );
    let (status, v) = raw_json(emu.addr(), "GET", "/apis/nope.dev/v1/things", None).await;
    assert_eq!(
        (status, v["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );
    let (status, v) = raw_json(
        emu.addr(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(r#"{"metadata":{"name":"x","namespace":"other"}}"#),
    )
    .await;
    assert_eq!((status, v["reason"].as_str()), (400, Some("BadRequest")));
    let (status, _) = raw_json(
        emu.addr(),
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        Some("{}"),
    )
    .await;
    assert_eq!(status, 405);
    let (raw, _) = raw_exchange(
        emu.addr(),
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        &[("Content-Type", "application/xml")],
        Some("<x/>"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(parse_response(&raw).0, 415);
}

#[tokio::test]
async fn binary_prints_its_url_first_serves_the_kubeconfig_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("kube-emulator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let faults = dir.join("faults.json");
    std::fs::write(
        &faults,
        r#"[{"type":"http_error","code":500,"verbs":["list"],"count":1}]"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--faults")
        .arg(&faults)
        .args(["--bookmark-interval", "500ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_string()
    })
    .await
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: {url}")));
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    match api.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(st) => assert_eq!(st.code, 500, "the --faults file was loaded"),
        other => panic!("{other:?}"),
    }
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exited.success(), "clean exit on SIGTERM: {exited:?}");
    std::fs::remove_dir_all(&dir).ok();
}
