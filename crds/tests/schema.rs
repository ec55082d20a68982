//! The CRD itself: names, printer columns, subresources, a structural schema with a description
//! and a default where a user needs one, and CEL rules that compile within the cost budget.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

mod common;

use serde_json::Value;
use watchpool_api::{ErrorReason, TargetState, crd, crd_schema};

#[test]
fn names_scope_short_name_category_and_status_subresource() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("watchpolicies.watchpool.dev")
    );
    assert_eq!(crd.spec.group, "watchpool.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "WatchPolicy");
    assert_eq!(names.plural, "watchpolicies");
    assert_eq!(names.singular.as_deref(), Some("watchpolicy"));
    assert_eq!(names.short_names.as_deref(), Some(&["wp".to_string()][..]));
    assert_eq!(
        names.categories.as_deref(),
        Some(&["watchpool".to_string()][..])
    );
    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert!(v.subresources.as_ref().unwrap().status.is_some());
}

#[test]
fn printer_columns_are_ready_watching_targets_objects_reconnects_cpu_age() {
    let crd = crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap();
    let got: Vec<(String, &str, &str)> = columns
        .iter()
        .map(|c| {
            (
                c.name.to_uppercase(),
                c.type_.as_str(),
                c.json_path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "READY".to_string(),
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#
            ),
            ("WATCHING".to_string(), "integer", ".status.watching"),
            ("TARGETS".to_string(), "integer", ".status.targetCount"),
            ("OBJECTS".to_string(), "integer", ".status.objects"),
            ("RECONNECTS".to_string(), "integer", ".status.reconnects"),
            ("CPU".to_string(), "string", ".status.cpu.used"),
            ("AGE".to_string(), "date", ".metadata.creationTimestamp"),
        ]
    );
}

/// Every node of the schema, with its path.
fn nodes(node: &Value, path: String, out: &mut Vec<(String, Value)>) {
    out.push((path.clone(), node.clone()));
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            nodes(v, format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        nodes(items, format!("{path}[]"), out);
    }
    if let Some(Value::Object(_)) = node.get("additionalProperties") {
        nodes(&node["additionalProperties"], format!("{path}{{}}"), out);
    }
}

fn all_nodes() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    nodes(&crd_schema(), String::new(), &mut out);
    out
}

#[test]
fn schema_is_structural() {
    let mut problems = Vec::new();
    for (path, node) in all_nodes() {
        let typed = node.get("type").is_some()
            || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !typed {
            problems.push(format!("{path}: no type"));
        }
        for forbidden in [
            "$ref",
            "definitions",
            "$defs",
            "oneOf",
            "anyOf",
            "allOf",
            "not",
        ] {
            if node.get(forbidden).is_some() {
                problems.push(format!("{path}: has {forbidden}"));
            }
        }
        if node.get("properties").is_some() && node.get("additionalProperties").is_some() {
            problems.push(format!(
                "{path}: properties and additionalProperties together"
            ));
        }
        if node.get("type").and_then(Value::as_str) == Some("array") && node.get("items").is_none()
        {
            problems.push(format!("{path}: array without items"));
        }
        if let Some(ty) = node.get("type")
            && !ty.is_string()
        {
            problems.push(format!("{path}: type is not a single string: {ty}"));
        }
        if let Some(required) = node.get("required").and_then(Value::as_array) {
            for r in required {
                if node
                    .pointer(&format!("/properties/{}", r.as_str().unwrap()))
                    .is_none()
                {
                    problems.push(format!("{path}: required {r} is not a property"));
                }
            }
        }
        if let Some(default) = node.get("default") {
            let mut errors = Vec::new();
            common::check_schema(&node, default, &path, &mut errors);
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| format!("default does not fit: {e}")),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_field_has_a_description() {
    let missing: Vec<String> = all_nodes()
        .into_iter()
        .filter(|(path, node)| {
            // Scalar list items are described by their list.
            let scalar_item = path.ends_with("[]")
                && !matches!(
                    node.get("type").and_then(Value::as_str),
                    Some("object" | "array")
                );
            !path.is_empty()
                && !scalar_item
                && node
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn every_optional_spec_field_shows_its_default() {
    let schema = crd_schema();
    let want: &[(&str, Value)] = &[
        ("/properties/spec/properties/suspend", false.into()),
        (
            "/properties/spec/properties/targets/items/properties/namespaces",
            serde_json::json!([]),
        ),
        (
            "/properties/spec/properties/targets/items/properties/metadataOnly",
            false.into(),
        ),
        (
            "/properties/spec/properties/timeouts/properties/watch",
            "5m".into(),
        ),
        (
            "/properties/spec/properties/timeouts/properties/idle",
            "90s".into(),
        ),
        (
            "/properties/spec/properties/timeouts/properties/request",
            "30s".into(),
        ),
        (
            "/properties/spec/properties/timeouts/properties/resync",
            "0s".into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/initial",
            "800ms".into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/max",
            "30s".into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/factor",
            2.0.into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/jitter",
            0.5.into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/resetAfter",
            "2m".into(),
        ),
        (
            "/properties/spec/properties/backoff/properties/maxRetries",
            0.into(),
        ),
        (
            "/properties/spec/properties/limits/properties/cpu",
            "100m".into(),
        ),
        (
            "/properties/spec/properties/limits/properties/maxObjects",
            100_000.into(),
        ),
        (
            "/properties/spec/properties/limits/properties/maxEventSize",
            "16Mi".into(),
        ),
    ];
    for (pointer, default) in want {
        let node = schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing"));
        assert_eq!(node.get("default"), Some(default), "{pointer}");
    }
    // The objects default as a whole too, so a spec without them gets every nested default.
    for object in ["timeouts", "backoff", "limits"] {
        let node = &schema["properties"]["spec"]["properties"][object];
        let default = node
            .get("default")
            .unwrap_or_else(|| panic!("{object} has no default"));
        let props = node["properties"].as_object().unwrap();
        for (name, prop) in props {
            assert_eq!(default.get(name), prop.get("default"), "{object}.{name}");
        }
    }
    // Only targets is required in the spec.
    assert_eq!(
        schema["properties"]["spec"]["required"],
        serde_json::json!(["targets"])
    );
}

#[test]
fn lists_are_bounded_and_strings_under_cel_have_a_max_length() {
    let schema = crd_schema();
    let targets = &schema["properties"]["spec"]["properties"]["targets"];
    assert_eq!(targets["maxItems"], 32);
    assert_eq!(targets["minItems"], 1);
    let target = &targets["items"]["properties"];
    assert_eq!(target["namespaces"]["maxItems"], 32);
    assert_eq!(target["namespaces"]["items"]["maxLength"], 63);
    for field in ["apiVersion", "kind", "labelSelector", "fieldSelector"] {
        assert!(target[field]["maxLength"].is_u64(), "{field}");
    }
    for (path, node) in all_nodes() {
        if path.starts_with(".spec") && node.get("type").and_then(Value::as_str) == Some("string") {
            assert!(node.get("maxLength").is_some(), "{path} has no maxLength");
        }
        if path.starts_with(".spec") && node.get("type").and_then(Value::as_str) == Some("array") {
            assert!(node.get("maxItems").is_some(), "{path} has no maxItems");
        }
    }
}

#[test]
fn cel_rules_compile_and_stay_within_the_cost_budget() {
    use kube::core::cel::{compile_schema, estimate_rule_cost};
    let mut rules = 0;
    for (path, node) in all_nodes() {
        let Some(list) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let compiled = compile_schema(&node);
        assert!(
            !compiled.has_errors(),
            "{path}: {:?}",
            compiled.compilation_errors()
        );
        for rule in list {
            rules += 1;
            let expr = rule["rule"].as_str().unwrap();
            let message = rule["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{path}: rule {expr} has no message");
            let warnings = estimate_rule_cost(expr, &compiled);
            assert!(warnings.is_empty(), "{path}: {expr}: {warnings:?}");
        }
    }
    assert!(rules >= 10, "only {rules} CEL rules");

    // The estimate bites: the uniqueness rule over an unbounded list of unbounded targets is
    // refused.
    let mut unbounded = crd_schema()["properties"]["spec"]["properties"]["targets"].clone();
    unbounded.as_object_mut().unwrap().remove("maxItems");
    let compiled = compile_schema(&unbounded);
    let expr = unbounded["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .unwrap();
    assert!(!estimate_rule_cost(expr, &compiled).is_empty());
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    let schema = crd_schema();
    let conditions = &schema["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let required = conditions["items"]["required"].as_array().unwrap();
    assert!(
        required.contains(&"type".into()),
        "a map key must be required"
    );
}

#[test]
fn state_and_reason_are_enums_of_every_variant() {
    let schema = crd_schema();
    let target = &schema["properties"]["status"]["properties"]["targets"]["items"]["properties"];
    let states: Vec<Value> = TargetState::ALL.iter().map(|s| s.as_str().into()).collect();
    assert_eq!(target["state"]["enum"], Value::Array(states));
    let reasons = target["lastError"]["properties"]["reason"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(reasons.len(), 17);
    for r in reasons {
        let reason: ErrorReason = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(reason.as_str(), r.as_str().unwrap());
    }
}
