//! The operator binary against the emulator: validation and trust, finalizer, suspend, the
//! admin endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests: a panic is a failure report

mod common;

use std::time::Duration;

use common::*;
use kube_emulator::{Fault, FaultSpec};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_gets_invalid_spec_with_field_path_and_other_policies_stay_served() {
    let c = cluster().await;
    c.namespace("team-a");
    c.policy("team-a", "good", configmap_spec());
    c.policy(
        "team-a",
        "bad",
        json!({"targets": [{"apiVersion": "v1", "kind": "ConfigMap"}], "backoff": {"initial": "1m", "max": "1s"}}),
    );
    let op = start_operator(&c, &[], &[("POD_NAMESPACE", "ops")]).await;

    wait_for(
        "InvalidSpec on the bad policy",
        Duration::from_secs(20),
        || {
            c.condition("team-a", "bad", "Ready")
                .is_some_and(|r| r["reason"] == "InvalidSpec")
        },
    )
    .await;
    let ready = c.condition("team-a", "bad", "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.backoff.initial"),
        "{ready}"
    );

    // The good policy has a pool and a status of its own.
    wait_for(
        "a status on the good policy",
        Duration::from_secs(20),
        || {
            c.condition("team-a", "good", "Ready")
                .is_some_and(|r| r["reason"] != "InvalidSpec")
        },
    )
    .await;
    let (code, body) = op.get("/debug/pools").await;
    assert_eq!(code, 200);
    let pools: Value = serde_json::from_str(&body).unwrap();
    let phase = |name: &str| {
        pools["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["phase"].clone())
    };
    assert_eq!(phase("bad"), Some(json!("InvalidSpec")));
    assert_eq!(phase("good"), Some(json!("Running")));
    // A Warning event says why, with the field path.
    wait_for("an InvalidSpec event", Duration::from_secs(10), || {
        c.emu
            .list("events.k8s.io/v1", "Event", Some("team-a"))
            .is_ok_and(|events| {
                events.iter().any(|e| {
                    e["reason"] == "InvalidSpec"
                        && e["type"] == "Warning"
                        && e["regarding"]["name"] == "bad"
                        && e["note"]
                            .as_str()
                            .is_some_and(|n| n.contains("spec.backoff.initial"))
                })
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_outside_the_trusted_namespaces_may_not_watch_elsewhere() {
    let c = cluster().await;
    for ns in ["team-a", "team-b", "ops"] {
        c.namespace(ns);
    }
    c.policy(
        "team-a",
        "sneaky",
        json!({"targets": [{"apiVersion": "v1", "kind": "Secret", "namespaces": ["team-b"]}]}),
    );
    c.policy(
        "ops",
        "trusted",
        json!({"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespaces": ["team-b"]}]}),
    );
    let _op = start_operator(&c, &["--trusted-namespaces", "ops"], &[]).await;
    wait_for(
        "InvalidSpec naming the namespace",
        Duration::from_secs(20),
        || {
            c.condition("team-a", "sneaky", "Ready").is_some_and(|r| {
                r["reason"] == "InvalidSpec"
                    && r["message"].as_str().unwrap_or("").contains("team-b")
            })
        },
    )
    .await;
    wait_for(
        "the trusted policy to be accepted",
        Duration::from_secs(20),
        || {
            c.condition("ops", "trusted", "Ready")
                .is_some_and(|r| r["reason"] != "InvalidSpec")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_the_pool_teardown_then_the_object_goes() {
    let c = cluster().await;
    c.policy("default", "doomed", configmap_spec());
    let op = start_operator(&c, &[], &[]).await;
    wait_for("the finalizer", Duration::from_secs(20), || {
        c.get_policy("default", "doomed").is_some_and(|p| {
            p["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "watchpool.dev/cleanup"))
        })
    })
    .await;
    wait_for_async("a running pool", Duration::from_secs(20), || async {
        let (_, body) = op.get("/debug/pools").await;
        body.contains("\"doomed\"")
    })
    .await;
    c.emu
        .delete("watchpool.dev/v1alpha1", "WatchPolicy", "default", "doomed")
        .unwrap();
    wait_for("the object to go", Duration::from_secs(20), || {
        c.get_policy("default", "doomed").is_none()
    })
    .await;
    let (_, body) = op.get("/debug/pools").await;
    assert!(
        !body.contains("\"doomed\""),
        "pool still listed after delete: {body}"
    );
    assert!(
        op.has_log("pool torn down; releasing the policy"),
        "{:#?}",
        op.logs()
    );
    let (_, metrics) = op.get("/metrics").await;
    assert!(
        !metrics.contains("policy=\"doomed\""),
        "series of a deleted policy remain:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_the_pool_and_reports_suspended_targets() {
    let c = cluster().await;
    c.policy("default", "sleepy", configmap_spec());
    let op = start_operator(&c, &[], &[]).await;
    wait_for_async("a running pool", Duration::from_secs(20), || async {
        let (_, body) = op.get("/debug/pools").await;
        body.contains("\"Running\"")
    })
    .await;
    c.emu
        .patch_merge(
            "watchpool.dev/v1alpha1",
            "WatchPolicy",
            "default",
            "sleepy",
            json!({"spec": {"suspend": true}}),
            false,
        )
        .unwrap();
    wait_for("Ready=False Suspended", Duration::from_secs(20), || {
        c.condition("default", "sleepy", "Ready")
            .is_some_and(|r| r["reason"] == "Suspended")
    })
    .await;
    let p = c.get_policy("default", "sleepy").unwrap();
    assert_eq!(
        p["status"]["observedGeneration"],
        p["metadata"]["generation"]
    );
    assert_eq!(p["status"]["targets"][0]["state"], "Suspended");
    assert_eq!(p["status"]["targets"][0]["namespace"], "default");
    let (_, body) = op.get("/debug/pools").await;
    let pools: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pools["policies"][0]["phase"], "Suspended");
    assert_eq!(pools["policies"][0]["watches"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_policy_watch_syncs_then_200() {
    let c = cluster().await;
    // Hold the operator's first WatchPolicy list back for two seconds.
    c.emu.faults().add(
        FaultSpec::new(Fault::Latency {
            ms: 2000,
            jitter_ms: 0,
            headers_never: false,
        })
        .verbs(&["list"])
        .resource("watchpolicies")
        .count(1),
    );
    let op = start_operator(&c, &[], &[]).await;
    let (code, body) = op.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    let (code, _) = op.get("/livez").await;
    assert_eq!(code, 200);
    wait_for_async("readyz 200", Duration::from_secs(20), || async {
        op.get("/readyz").await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_carry_the_documented_names() {
    let c = cluster().await;
    c.policy("default", "observed", configmap_spec());
    let op = start_operator(&c, &[], &[]).await;
    wait_for("a status", Duration::from_secs(20), || {
        c.condition("default", "observed", "Ready").is_some()
    })
    .await;
    wait_for_async(
        "the status write to be counted",
        Duration::from_secs(10),
        || async {
            op.get("/metrics")
                .await
                .1
                .contains("watchpool_status_writes_total{")
        },
    )
    .await;
    let (code, text) = op.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "unparsable sample: {line}");
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("watchpool_"), "foreign metric: {line}");
    }
    for name in [
        "watchpool_reconcile_total{result=\"success\"}",
        "watchpool_reconcile_duration_seconds_count",
        "watchpool_status_writes_total{policy_namespace=\"default\",policy=\"observed\"}",
        "watchpool_leader 1",
        "watchpool_build_info{version=",
        "# TYPE watchpool_watch_events counter",
        "# TYPE watchpool_watch_targets gauge",
        "# TYPE watchpool_pool_cpu_seconds counter",
        "# TYPE watchpool_watch_relists counter",
        "# TYPE watchpool_cache_objects gauge",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_pool_is_ready_and_its_cache_matches_the_api_server() {
    let c = cluster().await;
    for i in 0..5 {
        c.emu
            .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "default"}}))
            .unwrap();
    }
    c.policy("default", "inventory", configmap_spec());
    let op = start_operator(&c, &[], &[]).await;
    wait_for("Ready=True with 5 objects", Duration::from_secs(20), || {
        c.condition("default", "inventory", "Ready")
            .is_some_and(|r| r["status"] == "True")
            && c.get_policy("default", "inventory")
                .is_some_and(|p| p["status"]["objects"] == 5)
    })
    .await;
    let p = c.get_policy("default", "inventory").unwrap();
    assert_eq!(
        c.condition("default", "inventory", "Ready").unwrap()["reason"],
        "AllTargetsWatching"
    );
    assert_eq!(
        c.condition("default", "inventory", "Degraded").unwrap()["status"],
        "False"
    );
    assert_eq!(p["status"]["targetCount"], 1);
    assert_eq!(p["status"]["watching"], 1);
    assert_eq!(p["status"]["targets"][0]["state"], "Watching");
    assert_eq!(p["status"]["targets"][0]["kind"], "ConfigMap");
    assert_eq!(p["status"]["observedGeneration"], 1);
    assert!(
        p["status"]["cpu"]["limit"].as_str().unwrap().ends_with('m'),
        "{p}"
    );
    let managers: Vec<&str> = p["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"watchpool-operator"), "{managers:?}");

    // /debug/pools: the cache's count and digest agree with a list of the API server.
    let listed = c.emu.list("v1", "ConfigMap", Some("default")).unwrap();
    let pairs: Vec<(String, String)> = listed
        .iter()
        .map(|o| {
            (
                o["metadata"]["uid"].as_str().unwrap().to_owned(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let expected = watchpool_engine::digest(pairs.iter().map(|(u, r)| (u.as_str(), r.as_str())));
    let (code, body) = op.get("/debug/pools").await;
    assert_eq!(code, 200);
    let pools: Value = serde_json::from_str(&body).unwrap();
    let watch = &pools["policies"][0]["watches"][0];
    assert_eq!(pools["policies"][0]["namespace"], "default");
    assert_eq!(pools["policies"][0]["name"], "inventory");
    assert_eq!(watch["apiVersion"], "v1");
    assert_eq!(watch["kind"], "ConfigMap");
    assert_eq!(watch["namespace"], "default");
    assert_eq!(watch["state"], "Watching");
    assert_eq!(watch["count"], 5);
    assert_eq!(watch["digest"], expected.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_kind_publishes_a_not_found_event_and_degrades() {
    let c = cluster().await;
    c.policy(
        "default",
        "lost",
        json!({
            "targets": [{"apiVersion": "example.com/v1", "kind": "Widget"}],
            "backoff": {"initial": "100ms", "max": "500ms"}
        }),
    );
    let _op = start_operator(&c, &[], &[]).await;
    wait_for("Degraded=True NotFound", Duration::from_secs(20), || {
        c.condition("default", "lost", "Degraded")
            .is_some_and(|d| d["status"] == "True")
    })
    .await;
    wait_for(
        "a NotFound event about the policy",
        Duration::from_secs(20),
        || {
            c.emu
                .list("events.k8s.io/v1", "Event", Some("default"))
                .is_ok_and(|events| {
                    events.iter().any(|e| {
                        e["reason"] == "NotFound"
                            && e["regarding"]["name"] == "lost"
                            && e["reportingController"] == "watchpool-operator"
                    })
                })
        },
    )
    .await;
    // Flapping cannot flood: a few seconds of retries produce at most the burst of events.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = c
        .emu
        .list("events.k8s.io/v1", "Event", Some("default"))
        .unwrap();
    let count: u64 = events
        .iter()
        .filter(|e| e["regarding"]["name"] == "lost")
        .map(|e| 1 + e["series"]["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(count <= 6, "{count} events: {events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_reconfigures_the_running_pool_in_place() {
    let c = cluster().await;
    c.policy("default", "growing", configmap_spec());
    let op = start_operator(&c, &[], &[]).await;
    wait_for("Ready=True", Duration::from_secs(20), || {
        c.condition("default", "growing", "Ready")
            .is_some_and(|r| r["status"] == "True")
    })
    .await;
    c.emu
        .patch_merge(
            "watchpool.dev/v1alpha1",
            "WatchPolicy",
            "default",
            "growing",
            json!({"spec": {"targets": [
                {"apiVersion": "v1", "kind": "ConfigMap"},
                {"apiVersion": "v1", "kind": "Secret"}
            ]}}),
            false,
        )
        .unwrap();
    wait_for(
        "two watching targets at generation 2",
        Duration::from_secs(20),
        || {
            c.get_policy("default", "growing").is_some_and(|p| {
                p["status"]["observedGeneration"] == 2
                    && p["status"]["targetCount"] == 2
                    && p["status"]["watching"] == 2
            })
        },
    )
    .await;
    assert!(
        op.has_log("\"applied\":\"Reconfigured\""),
        "{:#?}",
        op.logs()
    );
    assert_eq!(
        op.logs()
            .iter()
            .filter(|l| l.contains("\"applied\":\"Created\""))
            .count(),
        1
    );
    let ready = c.condition("default", "growing", "Ready").unwrap();
    assert_eq!(ready["observedGeneration"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_watch_is_reported_stalled_then_recovered_with_events() {
    let c = cluster().await;
    c.policy(
        "default",
        "quiet",
        json!({
            "targets": [{"apiVersion": "v1", "kind": "ConfigMap"}],
            "timeouts": {"idle": "1s", "request": "5s", "watch": "60s"},
            "backoff": {"initial": "100ms", "max": "1s"}
        }),
    );
    // The first watch of ConfigMaps goes silent (a half-open connection).
    c.emu.faults().add(
        FaultSpec::new(Fault::StallWatches { secs: None })
            .verbs(&["watch"])
            .resource("configmaps")
            .count(1),
    );
    let _op = start_operator(&c, &[], &[]).await;
    let events = |reason: &str| {
        c.emu
            .list("events.k8s.io/v1", "Event", Some("default"))
            .is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| e["reason"] == reason && e["regarding"]["name"] == "quiet")
            })
    };
    wait_for("a Stalled event", Duration::from_secs(20), || {
        events("Stalled")
    })
    .await;
    wait_for("a Recovered event", Duration::from_secs(20), || {
        events("Recovered")
    })
    .await;
    wait_for("Ready=True again", Duration::from_secs(20), || {
        c.condition("default", "quiet", "Ready")
            .is_some_and(|r| r["status"] == "True")
    })
    .await;
    let p = c.get_policy("default", "quiet").unwrap();
    assert_eq!(
        p["status"]["targets"][0]["lastError"]["reason"], "IdleTimeout",
        "{p}"
    );
}
