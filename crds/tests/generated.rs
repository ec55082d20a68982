//! The committed generated files (the CRD manifest, the chart's copy of it, the API reference)
//! are exactly what the types produce. `WATCHPOOL_BLESS=1 cargo test -p watchpool-api --test
//! generated` rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bless() -> bool {
    std::env::var("WATCHPOOL_BLESS").is_ok_and(|v| v == "1")
}

/// Fails (or, when blessing, rewrites) unless `path` holds exactly `want`.
fn check_file(path: &Path, want: &str, how: &str) {
    if bless() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{} cannot be read ({e}); generate it: {how}",
            path.display()
        )
    });
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || have.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} differs from what the types generate (first difference at line {line}); regenerate it: {how}",
            path.display()
        );
    }
}

const REGENERATE_CRD: &str = "`WATCHPOOL_BLESS=1 cargo test -p watchpool-api --test generated` \
    (or `cargo run -p watchpool-operator -- crd > crds/watchpool.dev_watchpolicies.yaml`)";

#[test]
fn committed_crd_manifest_matches_the_types() {
    let path = repo_root().join("crds/watchpool.dev_watchpolicies.yaml");
    check_file(&path, &watchpool_api::crd_yaml(), REGENERATE_CRD);
}

#[test]
fn chart_crd_copy_matches_the_types_when_the_chart_exists() {
    let chart = repo_root().join("charts/watchpool");
    if !chart.is_dir() {
        return; // no chart in this tree: nothing to compare
    }
    let path = chart.join("crds/watchpool.dev_watchpolicies.yaml");
    check_file(&path, &watchpool_api::crd_yaml(), REGENERATE_CRD);
}

#[test]
fn committed_api_reference_matches_the_schema() {
    let path = repo_root().join("docs/api-reference.md");
    check_file(
        &path,
        &watchpool_api::api_reference_markdown(),
        "`WATCHPOOL_BLESS=1 cargo test -p watchpool-api --test generated`",
    );
}

#[test]
fn crd_yaml_is_deterministic_and_parses_back_to_the_crd() {
    let first = watchpool_api::crd_yaml();
    assert_eq!(first, watchpool_api::crd_yaml());
    let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(&first).unwrap();
    assert_eq!(
        serde_json::to_value(parsed).unwrap(),
        serde_json::to_value(watchpool_api::crd()).unwrap()
    );
}
