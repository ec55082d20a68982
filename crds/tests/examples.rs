//! Every policy in `examples/` decodes, passes `validate()` in the namespace it names (trusted
//! only where its comment says the operator must trust it) and passes the CRD's schema and CEL
//! rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

mod common;

use std::path::Path;

use watchpool_api::{NamespaceScope, PolicyConfig, ValidationContext, WatchPolicy};

/// Each example and whether its namespace must be trusted.
const EXAMPLES: &[(&str, bool)] = &[
    ("minimal.yaml", false),
    ("full.yaml", true),
    ("cluster-wide.yaml", true),
    ("secrets-metadata.yaml", false),
    ("flaky-network.yaml", false),
];

fn load(name: &str) -> (String, WatchPolicy) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let policy: WatchPolicy =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    (text, policy)
}

fn config(name: &str, trusted: bool) -> PolicyConfig {
    let (_, policy) = load(name);
    let ns = policy
        .metadata
        .namespace
        .clone()
        .expect("examples name their namespace");
    policy
        .spec
        .validate(&ValidationContext::new(ns).trusted(trusted))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_example_is_listed_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn every_example_passes_both_layers() {
    for (name, trusted) in EXAMPLES {
        config(name, *trusted);
        let (text, _) = load(name);
        let object = common::yaml(&text);
        let errors = common::admission_errors(&object);
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn examples_that_need_trust_are_refused_untrusted() {
    for (name, trusted) in EXAMPLES.iter().filter(|(_, t)| *t) {
        assert!(*trusted);
        let (_, policy) = load(name);
        let ns = policy.metadata.namespace.clone().unwrap();
        let err = policy
            .spec
            .validate(&ValidationContext::new(ns))
            .unwrap_err();
        assert!(err.to_string().contains("not trusted"), "{name}: {err}");
    }
}

#[test]
fn minimal_example_watches_its_own_namespace() {
    let config = config("minimal.yaml", false);
    assert_eq!(config.targets.len(), 1);
    assert_eq!(
        config.targets[0].scope,
        NamespaceScope::Namespaces(vec!["default".into()])
    );
}

#[test]
fn full_example_is_the_design_policy() {
    let config = config("full.yaml", true);
    assert_eq!(
        config.targets[0].scope,
        NamespaceScope::Namespaces(vec!["payments".into(), "shop".into()])
    );
    assert_eq!(
        config.targets[0].label_selector.as_deref(),
        Some("tier in (web,api)")
    );
    assert!(config.targets[1].metadata_only);
    assert_eq!(config.timeouts, Default::default());
    assert_eq!(config.backoff, Default::default());
    assert_eq!(config.limits, Default::default());
}

#[test]
fn cluster_wide_example_watches_every_namespace() {
    let config = config("cluster-wide.yaml", true);
    assert_eq!(config.targets[2].scope, NamespaceScope::All);
    assert_eq!(config.limits.cpu_millis, 200);
}

#[test]
fn secrets_are_metadata_only_unless_secret_data_is_allowed() {
    let (_, mut policy) = load("secrets-metadata.yaml");
    policy.spec.targets[0].metadata_only = false;
    let ctx = ValidationContext::new("shop");
    let forced = policy.spec.validate(&ctx).unwrap();
    assert!(
        forced.targets[0].metadata_only,
        "secret data must not be read by default"
    );
    assert!(
        !forced.targets[1].metadata_only,
        "a ConfigMap is not forced"
    );
    let allowed = policy.spec.validate(&ctx.allow_secret_data(true)).unwrap();
    assert!(!allowed.targets[0].metadata_only);
}

#[test]
fn flaky_network_example_parses_its_tuning() {
    let config = config("flaky-network.yaml", false);
    assert_eq!(
        config.timeouts.resync,
        Some(std::time::Duration::from_secs(1800))
    );
    assert_eq!(
        config.backoff.initial,
        std::time::Duration::from_millis(200)
    );
    assert_eq!(config.backoff.max_retries, 20);
    assert_eq!(config.limits.max_event_size, 4 << 20);
}
