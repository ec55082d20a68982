//! Helpers shared by the integration tests: the admission layer (schema + CEL) evaluated
//! client-side, and policy construction from YAML.
#![allow(dead_code)] // each test file uses a different part of these helpers

use kube::core::cel::{Validator, apply_defaults};
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
/// defaulted from the schema, checked against the schema's types and bounds (what the API
/// server's OpenAPI validation does) and then against every CEL rule (kube's client-side CEL
/// evaluator, the same rules the API server runs).
pub fn admission_errors(object: &Value) -> Vec<String> {
    let schema = schema();
    let defaulted = apply_defaults(&schema, object);
    let mut errors = Vec::new();
    check_schema(&schema, &defaulted, "", &mut errors);
    if let Err(cel) = Validator::new().validate(&schema, object, None) {
        for e in cel.iter() {
            errors.push(format!(
                "{}: {} (CEL {:?})",
                e.field_path, e.message, e.rule
            ));
        }
    }
    errors
}

/// The OpenAPI checks the API server applies to a structural schema (types, required,
/// patterns, lengths, bounds, item counts, enums).
pub fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut err = |msg: String| errors.push(format!("{path}: {msg}"));
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && !path.is_empty() {
            err("must not be null".into());
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        err(format!("must be of type {ty}"));
        return;
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            err(format!("should be at least {min} chars long"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            err(format!("may not be longer than {max}"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(p).unwrap().is_match(s)
        {
            err(format!("should match '{p}'"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            err(format!("should be greater than or equal to {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            err(format!("should be less than or equal to {max}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        err(format!("must be one of {values:?}"));
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            err(format!("should have at least {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            err(format!("must have at most {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check_schema(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let sep = if path.is_empty() { "" } else { "." };
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{path}{sep}{r}: Required value"));
                }
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in obj {
                if let Some(child) = props.get(k) {
                    check_schema(child, v, &format!("{path}{sep}{k}"), errors);
                }
            }
        }
    }
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
