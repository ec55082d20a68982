//! Defaults: a policy that names only its targets gets the defaults of DESIGN.md, the same
//! whether serde (the operator) or the CRD schema (the API server) fills them in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

mod common;

use std::time::Duration;

use serde_json::json;
use watchpool_api::{
    Backoff, BackoffConfig, Limits, LimitsConfig, NamespaceScope, Timeouts, TimeoutsConfig,
    ValidationContext, WatchPolicySpec,
};

const MINIMAL: &str = "targets: [{apiVersion: v1, kind: Pod}]";

#[test]
fn minimal_spec_decodes_to_the_design_defaults() {
    let spec: WatchPolicySpec = serde_saphyr::from_str(MINIMAL).unwrap();
    assert!(!spec.suspend);
    assert_eq!(
        spec.timeouts,
        Timeouts {
            watch: "5m".into(),
            idle: "90s".into(),
            request: "30s".into(),
            resync: "0s".into()
        }
    );
    assert_eq!(
        spec.backoff,
        Backoff {
            initial: "800ms".into(),
            max: "30s".into(),
            factor: 2.0,
            jitter: 0.5,
            reset_after: "2m".into(),
            max_retries: 0,
        }
    );
    assert_eq!(
        spec.limits,
        Limits {
            cpu: "100m".into(),
            max_objects: 100_000,
            max_event_size: "16Mi".into()
        }
    );
    let target = &spec.targets[0];
    assert!(target.namespaces.is_empty() && !target.metadata_only);
    assert!(target.label_selector.is_none() && target.field_selector.is_none());
}

#[test]
fn minimal_spec_validates_to_the_default_config() {
    let spec: WatchPolicySpec = serde_saphyr::from_str(MINIMAL).unwrap();
    let config = spec.validate(&ValidationContext::new("shop")).unwrap();
    assert!(!config.suspend);
    assert_eq!(
        config.timeouts,
        TimeoutsConfig {
            watch: Duration::from_secs(300),
            idle: Duration::from_secs(90),
            request: Duration::from_secs(30),
            resync: None,
        }
    );
    assert_eq!(config.timeouts, TimeoutsConfig::default());
    assert_eq!(
        config.backoff,
        BackoffConfig {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(120),
            max_retries: 0,
        }
    );
    assert_eq!(config.backoff, BackoffConfig::default());
    assert_eq!(
        config.limits,
        LimitsConfig {
            cpu_millis: 100,
            max_objects: 100_000,
            max_event_size: 16 * 1024 * 1024
        }
    );
    assert_eq!(config.limits, LimitsConfig::default());
    let target = &config.targets[0];
    assert_eq!(
        (
            target.group.as_str(),
            target.version.as_str(),
            target.kind.as_str()
        ),
        ("", "v1", "Pod")
    );
    assert_eq!(
        target.scope,
        NamespaceScope::Namespaces(vec!["shop".into()])
    );
}

#[test]
fn api_server_defaulting_gives_the_same_spec_as_serde() {
    let object = common::policy("shop", common::yaml(MINIMAL));
    let defaulted = kube::core::cel::apply_defaults(&common::schema(), &object);
    let serde_spec: WatchPolicySpec = serde_saphyr::from_str(MINIMAL).unwrap();
    assert_eq!(
        defaulted["spec"],
        serde_json::to_value(&serde_spec).unwrap()
    );
    // And the defaulted object decodes to the same typed spec.
    let from_server: WatchPolicySpec = serde_json::from_value(defaulted["spec"].clone()).unwrap();
    assert_eq!(from_server, serde_spec);
}

#[test]
fn partial_objects_get_their_missing_fields_defaulted() {
    let object = common::policy(
        "shop",
        json!({"targets": [{"apiVersion": "v1", "kind": "Pod"}], "backoff": {"max": "1m"}}),
    );
    let defaulted = kube::core::cel::apply_defaults(&common::schema(), &object);
    assert_eq!(defaulted["spec"]["backoff"]["max"], "1m");
    assert_eq!(defaulted["spec"]["backoff"]["initial"], "800ms");
    assert_eq!(defaulted["spec"]["backoff"]["factor"], 2.0);
    let spec: WatchPolicySpec = serde_json::from_value(json!({
        "targets": [{"apiVersion": "v1", "kind": "Pod"}], "backoff": {"max": "1m"}
    }))
    .unwrap();
    assert_eq!(spec.backoff.initial, "800ms");
    assert_eq!(spec.backoff.max, "1m");
}
