//! Pruning of fields a CRD's structural schema does not declare, as a real API server does for
//! custom resources, and the `fieldValidation` modes that report them (EMULATOR.md §9 P1.8).

use serde_json::Value;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are an error (400).
    Strict,
    /// Unknown fields are dropped with a `Warning` header (the server default).
    #[default]
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the parameter; anything unknown is the default.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn prune_at(v: &mut Value, schema: &Value, path: &str, removed: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let keep_unknown = preserves(schema);
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    match props.get(&k) {
                        Some(sub) => {
                            if let Some(child) = m.get_mut(&k) {
                                prune_at(child, sub, &join(path, &k), removed);
                            }
                        }
                        None if keep_unknown
                            || (embedded
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) => {}
                        None => {
                            m.remove(&k);
                            removed.push(join(path, &k));
                        }
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m.iter_mut() {
                    prune_at(child, ap, &join(path, k), removed);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    prune_at(child, item_schema, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

/// Drops every field of `obj` that `schema` (a version's `openAPIV3Schema`) does not declare,
/// except `apiVersion`, `kind` and `metadata` at the root. Returns the dropped paths
/// (`spec.foo`, `spec.items[0].bar`).
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut removed = Vec::new();
    let Value::Object(m) = obj else {
        return removed;
    };
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return removed;
    };
    let keep_unknown = preserves(schema);
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.get(&k) {
            Some(sub) => {
                if let Some(child) = m.get_mut(&k) {
                    prune_at(child, sub, &k, &mut removed);
                }
            }
            None if keep_unknown => {}
            None => {
                m.remove(&k);
                removed.push(k);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_pruned_and_reported_with_their_paths() {
        let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "size": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}});
        let mut obj = json!({"apiVersion": "ex.dev/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": {"size": 1, "foo": 2, "items": [{"name": "x", "bar": 1}], "labels": {"any": "v"}, "free": {"x": 1}},
            "extra": true});
        let mut removed = prune(&mut obj, &schema);
        removed.sort();
        assert_eq!(removed, ["extra", "spec.foo", "spec.items[0].bar"]);
        assert_eq!(
            obj["spec"],
            json!({"size": 1, "items": [{"name": "x"}], "labels": {"any": "v"}, "free": {"x": 1}})
        );
        assert_eq!(obj["metadata"]["name"], "a");
    }
}
