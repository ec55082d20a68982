//! Helpers shared by the integration tests: the admission layer (schema + CEL) evaluated
//! client-side, and policy construction from YAML.
#![allow(dead_code)] // each test file uses a different part of these helpers

use serde_json::{Value, json};
use watchpool_api::{ValidationContext, WatchPolicySpec};

/// The `openAPIV3Schema` of the CRD.
pub fn schema() -> Value {
    watchpool_api::crd_schema()
}

/// Parses a YAML document into JSON.
pub fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("bad YAML in test: {e}\n{text}"))
}

/// A WatchPolicy object around `spec`.
pub fn policy(namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "watchpool.dev/v1alpha1",
        "kind": "WatchPolicy",
        "metadata": {"name": "test", "namespace": namespace},
        "spec": spec,
    })
}

/// What the API server would reject at admission, as `path: message` lines: the object is
/// defaulted from the schema, checked against the schema's types and bounds and then against
/// every CEL rule — the kube-emulator's admission, which runs kube's client-side CEL evaluator
/// on the same rules the API server runs.
pub fn admission_errors(object: &Value) -> Vec<String> {
    let mut object = object.clone();
    kube_emulator::admission::admit(&schema(), &mut object)
        .into_iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect()
}

/// The OpenAPI checks the API server applies to a structural schema (types, required,
/// patterns, lengths, bounds, item counts, enums), as `path: message` lines.
pub fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut found = Vec::new();
    kube_emulator::admission::check(schema, value, path, &mut found);
    errors.extend(found.into_iter().map(|(p, m)| format!("{p}: {m}")));
}

/// The Rust layer on the same spec, with the same defaults (serde's).
pub fn rust_errors(
    spec: &Value,
    ctx: &ValidationContext,
) -> Result<(), watchpool_api::ValidationErrors> {
    let spec: WatchPolicySpec = serde_json::from_value(spec.clone())
        .unwrap_or_else(|e| panic!("spec does not decode: {e}"));
    spec.validate(ctx).map(|_| ())
}
