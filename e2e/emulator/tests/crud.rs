//! CRUD, patch, apply, finalizer, status and dry-run semantics, driven through kube-rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a test failure

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{
    Widget, WidgetSpec, WidgetStatus, install_widget_crd, requests_of, start, wait_until,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Error as KubeError, ResourceExt};
use serde_json::json;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn api_code(e: KubeError) -> (u16, String) {
    match e {
        KubeError::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_create_get_list_update_delete_round_trip() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("k", "1")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();
    assert_eq!(rv1, emu.resource_version());

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "1");

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(rv1.to_string().as_str())
    );

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(updated.resource_version().unwrap().parse::<u64>().unwrap() > rv1);
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an object without finalizers is gone at once (Status answer)"
    );
    assert_eq!(
        api_code(api.get("a").await.unwrap_err()),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn generate_name_appends_five_characters() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut obj = cm("", &[]);
    obj.metadata.name = None;
    obj.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let b = api.create(&PostParams::default(), &obj).await.unwrap();
    let (na, nb) = (a.name_any(), b.name_any());
    assert!(na.starts_with("gen-") && na.len() == 9, "{na}");
    assert_ne!(na, nb);
    obj.metadata.generate_name = None;
    assert_eq!(
        api_code(api.create(&PostParams::default(), &obj).await.unwrap_err()),
        (422, "Invalid".into())
    );
}

#[tokio::test]
async fn stale_resource_version_and_duplicates_are_conflicts() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &cm("c", &[("k", "1")]))
        .await
        .unwrap();
    assert_eq!(
        api_code(
            api.create(&PostParams::default(), &cm("c", &[]))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );
    let mut second = first.clone();
    second.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &second)
        .await
        .unwrap();
    // `first` still carries the old resourceVersion.
    let mut stale = first.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    assert_eq!(
        api_code(
            api.replace("c", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    // A resourceVersion inside a merge patch is a precondition too.
    let p = Patch::Merge(
        json!({"metadata": {"resourceVersion": first.resource_version()}, "data": {"k": "4"}}),
    );
    assert_eq!(
        api_code(
            api.patch("c", &PatchParams::default(), &p)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    // Missing namespace.
    let other: Api<ConfigMap> = Api::namespaced(client, "nope");
    assert_eq!(
        api_code(
            other
                .create(&PostParams::default(), &cm("x", &[]))
                .await
                .unwrap_err()
        ),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_reapply_is_a_noop() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("tester").force();
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1", "b": "2"}});
    let created = api.patch("s", &pp, &Patch::Apply(&cfg)).await.unwrap();
    assert_eq!(created.data.as_ref().unwrap().len(), 2);
    let created_req = requests_of(&emu, "patch", "configmaps");
    assert_eq!(
        created_req.last().unwrap().status,
        201,
        "apply on a missing object creates it"
    );
    assert!(
        created
            .metadata
            .managed_fields
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.manager.as_deref() == Some("tester"))
    );

    let again = api.patch("s", &pp, &Patch::Apply(&cfg)).await.unwrap();
    assert_eq!(
        again.resource_version(),
        created.resource_version(),
        "identical re-apply must not bump the RV"
    );

    // Dropping a field this manager applied before removes it.
    let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}});
    let updated = api.patch("s", &pp, &Patch::Apply(&cfg2)).await.unwrap();
    assert_eq!(
        updated.data.unwrap(),
        BTreeMap::from([("a".to_string(), "1".to_string())])
    );

    // Without a field manager apply is refused.
    let err = api
        .patch("s", &PatchParams::default(), &Patch::Apply(&cfg))
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 422);
}

#[tokio::test]
async fn merge_json_and_strategic_patches_follow_their_rfcs() {
    let (_emu, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("p", &[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    let merged = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap(),
        BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])
    );

    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/data/d", "value": "4"}
    ]);
    let patched: ConfigMap = json_patch(&client, "/api/v1/namespaces/default/configmaps/p", ops)
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["d"], "4");

    let failing = json!([{"op": "test", "path": "/data/d", "value": "5"}]);
    let err = json_patch::<ConfigMap>(&client, "/api/v1/namespaces/default/configmaps/p", failing)
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (422, "Invalid".into()));

    let strategic = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"e": "5"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["e"], "5");

    let widgets: Api<Widget> = Api::namespaced(client, "default");
    widgets
        .create(
            &PostParams::default(),
            &Widget::new(
                "w",
                WidgetSpec {
                    size: 1,
                    color: "red".into(),
                },
            ),
        )
        .await
        .unwrap();
    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (415, "UnsupportedMediaType".into()));
}

async fn json_patch<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    path: &str,
    ops: serde_json::Value,
) -> Result<T, KubeError> {
    let req = http::Request::patch(path)
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&ops).unwrap())
        .unwrap();
    client.request::<T>(req).await
}

#[tokio::test]
async fn status_subresource_and_generation_rules() {
    let (_emu, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    let mut w = Widget::new(
        "w",
        WidgetSpec {
            size: 1,
            color: "red".into(),
        },
    );
    w.status = Some(WidgetStatus {
        ready: true,
        observed: 9,
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        created.status, None,
        "status is dropped on create when it is a subresource"
    );
    assert_eq!(created.metadata.generation, Some(1));

    // Status through the main endpoint is ignored; spec change bumps generation.
    let p = Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": true}}));
    let after = api.patch("w", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(after.status, None);
    assert_eq!(after.metadata.generation, Some(2));

    // Status through /status changes only status and never generation.
    let p = Patch::Merge(json!({"spec": {"size": 3}, "status": {"ready": true, "observed": 2}}));
    let st = api
        .patch_status("w", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(st.spec.size, 2);
    assert_eq!(
        st.status,
        Some(WidgetStatus {
            ready: true,
            observed: 2
        })
    );
    assert_eq!(st.metadata.generation, Some(2));

    // Metadata-only change: no generation bump.
    let lab = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(lab.metadata.generation, Some(2));

    // A no-op write keeps the resourceVersion.
    let same = api
        .patch_status("w", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), lab.resource_version());

    // Update of a CR without resourceVersion is invalid.
    let mut no_rv = lab.clone();
    no_rv.metadata.resource_version = None;
    assert_eq!(
        api_code(
            api.replace("w", &PostParams::default(), &no_rv)
                .await
                .unwrap_err()
        )
        .0,
        422
    );
}

#[tokio::test]
async fn dry_run_persists_nothing_and_emits_nothing() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = emu.resource_version();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = api.create(&pp, &cm("d", &[])).await.unwrap();
    assert_eq!(out.name_any(), "d");
    assert_eq!(emu.resource_version(), rv);
    assert_eq!(api_code(api.get("d").await.unwrap_err()).0, 404);
    api.create(&PostParams::default(), &cm("d", &[]))
        .await
        .unwrap();
    let rv = emu.resource_version();
    api.delete(
        "d",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(emu.resource_version(), rv);
    api.get("d").await.unwrap();
}

#[tokio::test]
async fn finalizers_hold_deletion_until_the_last_one_is_removed() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut obj = cm("f", &[]);
    obj.metadata.finalizers = Some(vec!["ex.dev/hold".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    let terminating = api
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object answer");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // A new finalizer cannot be added while terminating.
    let p = Patch::Merge(json!({"metadata": {"finalizers": ["ex.dev/hold", "ex.dev/other"]}}));
    assert_eq!(
        api_code(
            api.patch("f", &PatchParams::default(), &p)
                .await
                .unwrap_err()
        )
        .0,
        422
    );
    // Removing the last one removes the object.
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_code(api.get("f").await.unwrap_err()).0, 404);
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn finalizer_helper_round_trip() {
    let (_emu, client) = start().await;
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &Widget::new(
            "fw",
            WidgetSpec {
                size: 1,
                color: String::new(),
            },
        ),
    )
    .await
    .unwrap();
    let name = "ex.dev/cleanup";
    // First pass adds the finalizer (JSON patch with a null test on a missing path).
    let obj = Arc::new(api.get("fw").await.unwrap());
    finalizer(&api, name, obj, |_| async {
        Ok::<_, Never>(Action::await_change())
    })
    .await
    .unwrap();
    let obj = api.get("fw").await.unwrap();
    assert_eq!(obj.finalizers(), [name.to_string()]);
    // Second pass applies.
    let applied = std::sync::atomic::AtomicBool::new(false);
    finalizer(&api, name, Arc::new(obj), |e| {
        if matches!(e, FinalizerEvent::Apply(_)) {
            applied.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        async { Ok::<_, Never>(Action::await_change()) }
    })
    .await
    .unwrap();
    assert!(applied.load(std::sync::atomic::Ordering::SeqCst));
    // Delete: terminating; cleanup removes the finalizer and the object goes.
    api.delete("fw", &DeleteParams::default()).await.unwrap();
    let obj = Arc::new(api.get("fw").await.unwrap());
    assert!(obj.metadata.deletion_timestamp.is_some());
    finalizer(&api, name, obj, |_| async {
        Ok::<_, Never>(Action::await_change())
    })
    .await
    .unwrap();
    assert_eq!(api_code(api.get("fw").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn namespace_deletion_removes_its_contents_and_owner_deletion_collects_dependents() {
    let (emu, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("tmp".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "tmp");
    let owner = api
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .unwrap();
    let mut dep = cm("dep", &[]);
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.uid().unwrap(),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        api_code(api.get("dep").await.unwrap_err()).0,
        404,
        "dependent collected with its owner"
    );

    api.create(&PostParams::default(), &cm("left", &[]))
        .await
        .unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    wait_until("namespace gone", Duration::from_secs(5), || {
        emu.get("v1", "Namespace", "", "tmp").is_err()
    })
    .await;
    assert!(
        emu.list("v1", "configmaps", Some("tmp"))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn list_paging_pins_the_resource_version_and_selectors_filter() {
    let (_emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        let mut o = cm(&format!("pg{i}"), &[]);
        o.metadata.labels = Some([("idx".to_string(), (i % 2).to_string())].into());
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    api.create(&PostParams::default(), &cm("zz-after", &[]))
        .await
        .unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(second.items[0].name_any(), "pg2");

    let odd = api
        .list(&ListParams::default().labels("idx=1"))
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 2);
    let set = api
        .list(&ListParams::default().labels("idx in (0),!missing"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 3);
    let named = api
        .list(&ListParams::default().fields("metadata.name=pg3"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    assert_eq!(
        api_code(
            api.list(&ListParams::default().labels("idx in 1"))
                .await
                .unwrap_err()
        )
        .0,
        400
    );
    assert_eq!(
        api_code(
            api.list(&ListParams::default().fields("spec.x=1"))
                .await
                .unwrap_err()
        )
        .0,
        400
    );

    let meta = api
        .list_metadata(&ListParams::default().labels("idx=0"))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 3);
    assert!(meta.items.iter().all(|m| m.metadata.uid.is_some()));
}

#[tokio::test]
async fn crd_registers_custom_resources_and_deletion_removes_them() {
    let (emu, client) = start().await;
    let crd = install_widget_crd(&client).await;
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        emu.resources()
            .iter()
            .any(|r| r.kind == "Widget" && r.status_subresource)
    );
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &Widget::new("w1", WidgetSpec::default()),
    )
    .await
    .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client);
    crds.delete("widgets.ex.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert!(!emu.resources().iter().any(|r| r.kind == "Widget"));
    assert_eq!(api_code(api.get("w1").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn in_process_api_shares_semantics_with_http() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    emu.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ip"}, "data": {"a": "1"}})).unwrap();
    assert_eq!(api.get("ip").await.unwrap().data.unwrap()["a"], "1");
    let err = emu
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ip"}}))
        .unwrap_err();
    assert_eq!(err.code, 409);
    emu.update(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ip"}, "data": {"a": "2"}})).unwrap();
    assert_eq!(
        emu.get("v1", "configmaps", "default", "ip").unwrap()["data"]["a"],
        "2"
    );
    emu.delete("v1", "cm", "default", "ip").unwrap();
    assert!(
        emu.list("v1", "ConfigMap", Some("default"))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_fields_of_custom_resources_are_pruned_or_refused_under_strict_validation() {
    let (emu, client) = start().await;
    install_widget_crd(&client).await;
    let body = r#"{"apiVersion":"ex.dev/v1","kind":"Widget","metadata":{"name":"u"},"spec":{"size":1,"foo":2},"bogus":true}"#;
    let path = "/apis/ex.dev/v1/namespaces/default/widgets";
    let (raw, _) = common::raw_exchange(
        emu.addr(),
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &[("Content-Type", "application/json")],
        Some(body),
        Duration::from_secs(5),
    )
    .await;
    let (status, _, resp) = common::parse_response(&raw);
    assert_eq!(status, 400);
    let msg = serde_json::from_slice::<serde_json::Value>(&resp).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("strict decoding error: ") && msg.contains("unknown field \"spec.foo\""),
        "{msg}"
    );
    let (raw, _) = common::raw_exchange(
        emu.addr(),
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body),
        Duration::from_secs(5),
    )
    .await;
    let (status, headers, resp) = common::parse_response(&raw);
    assert_eq!(status, 201);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "warning" && v.contains("unknown field \\\"spec.foo\\\"")),
        "{headers:?}"
    );
    let created: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    // `foo` pruned; `color` filled in from the schema's default.
    assert_eq!(created["spec"], json!({"size": 1, "color": ""}));
    assert!(created.get("bogus").is_none());
}

#[tokio::test]
async fn custom_resources_are_defaulted_and_validated_against_their_schema_at_admission() {
    let (emu, client) = start().await;
    install_widget_crd(&client).await;
    let path = "/apis/ex.dev/v1/namespaces/default/widgets";
    // A wrong type is refused with 422 Invalid naming the field; nothing is stored.
    let bad = r#"{"apiVersion":"ex.dev/v1","kind":"Widget","metadata":{"name":"bad"},"spec":{"size":"big"}}"#;
    let (status, body) = common::raw_json(emu.addr(), "POST", path, Some(bad)).await;
    assert_eq!(status, 422);
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "spec.size");
    assert!(
        body["message"].as_str().unwrap().contains("spec.size"),
        "{body}"
    );
    assert!(emu.get("ex.dev/v1", "widgets", "default", "bad").is_err());
    // A missing required field is refused too; a good one is stored with its defaults.
    let missing = r#"{"apiVersion":"ex.dev/v1","kind":"Widget","metadata":{"name":"m"},"spec":{}}"#;
    let (status, _) = common::raw_json(emu.addr(), "POST", path, Some(missing)).await;
    assert_eq!(status, 422);
    let good = json!({"apiVersion":"ex.dev/v1","kind":"Widget","metadata":{"name":"g","namespace":"default"},"spec":{"size":2}});
    let stored = emu.create(good).unwrap();
    assert_eq!(stored["spec"], json!({"size": 2, "color": ""}));
}

#[tokio::test]
async fn delete_collection_removes_only_matching_objects() {
    let (emu, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (name, tier) in [("d1", "a"), ("d2", "a"), ("d3", "b")] {
        let mut o = cm(name, &[]);
        o.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=a"),
    )
    .await
    .unwrap();
    let left: Vec<String> = emu
        .list("v1", "ConfigMap", Some("default"))
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["d3"]);
}

#[tokio::test]
async fn auto_ready_fakes_workload_status() {
    let (emu, client) = start().await;
    emu.faults().add(kube_emulator::FaultSpec::new(
        kube_emulator::Fault::AutoReady {
            kinds: vec!["Deployment".into()],
        },
    ));
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    api.patch(
        "web",
        &PatchParams::apply("helm").force(),
        &Patch::Apply(&d),
    )
    .await
    .unwrap();
    let got = api.get("web").await.unwrap();
    let st = got.status.unwrap();
    assert_eq!(
        (
            st.ready_replicas,
            st.available_replicas,
            st.observed_generation
        ),
        (Some(2), Some(2), Some(1))
    );
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
}

#[tokio::test]
async fn apply_without_force_conflicts_with_another_managers_field() {
    let (_emu, client) = start().await;
    let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, "default");
    let lease = |holder: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"}, "spec": {"holderIdentity": holder}});
    api.patch(
        "leader",
        &PatchParams::apply("mgr-a"),
        &Patch::Apply(lease("a")),
    )
    .await
    .unwrap();
    match api
        .patch(
            "leader",
            &PatchParams::apply("mgr-b"),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap_err()
    {
        KubeError::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert_eq!(
                s.message,
                "Apply failed with 1 conflict: conflict with \"mgr-a\" using coordination.k8s.io/v1: .spec.holderIdentity"
            );
        }
        other => panic!("{other:?}"),
    }
    // Re-applying the same value is shared ownership, not a conflict.
    api.patch(
        "leader",
        &PatchParams::apply("mgr-b"),
        &Patch::Apply(lease("a")),
    )
    .await
    .unwrap();
    // After another writer changed the field, nobody's apply owns it any more.
    api.patch(
        "leader",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"holderIdentity": null}})),
    )
    .await
    .unwrap();
    api.patch(
        "leader",
        &PatchParams::apply("mgr-b"),
        &Patch::Apply(lease("b")),
    )
    .await
    .unwrap();
    // force takes a field over.
    let taken = api
        .patch(
            "leader",
            &PatchParams::apply("mgr-a").force(),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("a"));
}

#[tokio::test]
async fn events_recorded_through_events_k8s_io_are_listed_as_core_events() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_emu, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("subject", &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "watchpool".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "Stalled".into(),
        note: Some("no event for 90s".into()),
        action: "Watch".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&target, &());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    // `kubectl describe` lists core/v1 Events by involvedObject.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().fields(&format!(
        "involvedObject.name=subject,involvedObject.kind=ConfigMap,involvedObject.uid={}",
        target.uid().unwrap()
    ));
    let listed = core.list(&lp).await.unwrap();
    assert_eq!(
        listed.items.len(),
        1,
        "the second publish patched the same event"
    );
    let e = &listed.items[0];
    assert_eq!(e.message.as_deref(), Some("no event for 90s"));
    assert_eq!(e.reason.as_deref(), Some("Stalled"));
    assert_eq!(
        e.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("watchpool")
    );
    assert_eq!(e.involved_object.name.as_deref(), Some("subject"));
    // And the events.k8s.io view of the same object keeps its own shape.
    let new_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let same = new_api.get(&e.name_any()).await.unwrap();
    assert_eq!(same.note.as_deref(), Some("no event for 90s"));
    assert_eq!(same.series.map(|s| s.count), Some(2));
}
