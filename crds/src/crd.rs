//! The CustomResourceDefinition of `WatchPolicy`, as a value and as the YAML committed in
//! `crds/watchpool.dev_watchpolicies.yaml`, and the API reference generated from its schema.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::WatchPolicy;

/// The CRD of `watchpolicies.watchpool.dev`, derived from the Rust types.
///
/// Post-processing: integer formats that Kubernetes does not know (`uint32`, `uint64`, which
/// schemars emits for unsigned fields) are replaced by `int64`; the bounds stay in
/// `minimum`/`maximum`.
pub fn crd() -> CustomResourceDefinition {
    let crd = WatchPolicy::crd();
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    normalise_formats(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn normalise_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(format)) = map.get("format")
                && format.starts_with("uint")
            {
                map.insert("format".into(), Value::String("int64".into()));
            }
            map.values_mut().for_each(normalise_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_formats),
        _ => {}
    }
}

/// The CRD as YAML, deterministic (same types, same bytes): what `watchpool-operator crd` prints
/// and what `crds/watchpool.dev_watchpolicies.yaml` holds.
pub fn crd_yaml() -> String {
    // Serialising through `serde_json::Value` sorts every map's keys, so the output does not
    // depend on the order in which schemars inserted them.
    let value = match serde_json::to_value(crd()) {
        Ok(value) => value,
        Err(e) => return format!("# the CRD could not be serialised: {e}\n"),
    };
    match serde_saphyr::to_string(&value) {
        Ok(yaml) => yaml,
        Err(e) => format!("# the CRD could not be serialised: {e}\n"),
    }
}

/// The schema of the served version (`openAPIV3Schema`) as JSON.
pub fn crd_schema() -> Value {
    serde_json::to_value(crd())
        .ok()
        .and_then(|crd| {
            crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// `docs/api-reference.md`: every field of spec and status with its type, default, bounds,
/// validation rules and description, generated from the CRD schema.
pub fn api_reference_markdown() -> String {
    let schema = crd_schema();
    let crd = crd();
    let mut out = String::new();
    let names = &crd.spec.names;
    let version = crd.spec.versions.first();
    let _ = writeln!(out, "# WatchPolicy API reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the CRD schema by `watchpool_api::api_reference_markdown()`; do not edit.\n     Regenerate: WATCHPOOL_BLESS=1 cargo test -p watchpool-api --test generated -->\n"
    );
    let _ = writeln!(
        out,
        "`{}/{}`, kind `{}`, plural `{}`, short name{} {}, categor{} {}; namespaced: {}; status subresource: {}.\n",
        crd.spec.group,
        version.map(|v| v.name.as_str()).unwrap_or_default(),
        names.kind,
        names.plural,
        if names.short_names.as_ref().map_or(0, Vec::len) == 1 {
            ""
        } else {
            "s"
        },
        list_code(names.short_names.as_deref().unwrap_or_default()),
        if names.categories.as_ref().map_or(0, Vec::len) == 1 {
            "y"
        } else {
            "ies"
        },
        list_code(names.categories.as_deref().unwrap_or_default()),
        if crd.spec.scope == "Namespaced" {
            "yes"
        } else {
            "no"
        },
        if version
            .and_then(|v| v.subresources.as_ref())
            .and_then(|s| s.status.as_ref())
            .is_some()
        {
            "yes"
        } else {
            "no"
        },
    );
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(description));
    }
    if let Some(columns) = version.and_then(|v| v.additional_printer_columns.as_ref()) {
        let _ = writeln!(out, "## Columns of `kubectl get wp`\n");
        let _ = writeln!(out, "| Column | JSONPath | Meaning |\n|---|---|---|");
        for c in columns {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                c.name.to_uppercase(),
                c.json_path,
                c.description
                    .as_deref()
                    .map(cell)
                    .unwrap_or_else(|| "Time since creation.".into())
            );
        }
        out.push('\n');
    }
    out.push_str(FORMATS);
    for root in ["spec", "status"] {
        if let Some(node) = schema.pointer(&format!("/properties/{root}")) {
            let _ = writeln!(out, "## `{root}`\n");
            field(&mut out, root, node, is_required(&schema, root));
            walk(&mut out, root, node);
        }
    }
    out
}

/// What the schema cannot say by itself: the value formats and the rules only the operator
/// checks.
const FORMATS: &str = "## Value formats

- **Durations** are Go-style strings: one or more `<number><unit>` with units `ns`, `us`, `ms`, \
`s`, `m`, `h` and an optional decimal part (`800ms`, `90s`, `1h30m`, `1.5s`), or `0`. No sign.
- **CPU** is a Kubernetes quantity string (`100m` = a tenth of a core, `0.5`, `1`), rounded up \
to a whole millicore. Quote plain numbers in YAML (`cpu: \"1\"`).
- **Sizes** are Kubernetes quantity strings of bytes (`16Mi`, `1Gi`, `500k`, `1e6`, `1048576`), \
rounded up to a whole byte. Quote plain numbers in YAML.

## Rules checked by the operator only

The API server enforces every bound and CEL rule listed below at admission. The operator checks \
all of them again (a policy that slips past gets `Ready=False`, reason `InvalidSpec`, with a \
message naming the field), and also what the schema cannot know:

- a target may watch namespaces other than the policy's own, or `[\"*\"]`, only when the \
policy lives in a namespace the operator trusts;
- label and field selectors must parse as Kubernetes selectors (`k=v`, `k==v`, `k!=v`, \
`k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma for AND; `field.path=value` with `\\,` and `\\=` \
escapes);
- two targets that resolve to the same watches (the same namespaces in another order, a \
namespace listed twice, the policy's own namespace written out) are duplicates;
- Secrets (`v1`/`Secret`) are watched metadata-only unless the operator allows secret data.

";

fn list_code(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn is_required(parent: &Value, name: &str) -> bool {
    parent
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|v| v == name))
}

fn walk(out: &mut String, path: &str, node: &Value) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        let mut names: Vec<&String> = props.keys().collect();
        names.sort();
        for name in names {
            let child = &props[name.as_str()];
            let child_path = format!("{path}.{name}");
            field(out, &child_path, child, is_required(node, name));
            walk(out, &child_path, child);
        }
    }
    if let Some(items) = node.get("items") {
        walk(out, &format!("{path}[]"), items);
    }
}

fn type_of(node: &Value) -> String {
    let t = node.get("type").and_then(Value::as_str).unwrap_or("any");
    match t {
        "array" => format!(
            "array of {}",
            node.get("items")
                .map(type_of)
                .unwrap_or_else(|| "any".into())
        ),
        _ => t.to_string(),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field(out: &mut String, path: &str, node: &Value, required: bool) {
    let _ = writeln!(out, "### `{path}`\n");
    let mut facts = vec![format!("Type: `{}`", type_of(node))];
    facts.push(if required {
        "required".into()
    } else {
        "optional".into()
    });
    if let Some(d) = node.get("default") {
        facts.push(format!("default: `{}`", compact(d)));
    }
    let _ = writeln!(out, "{}\n", facts.join(" · "));
    if let Some(description) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(description));
    }
    let rules = validation_lines(node);
    if !rules.is_empty() {
        let _ = writeln!(out, "Validation:\n");
        for r in rules {
            let _ = writeln!(out, "- {r}");
        }
        out.push('\n');
    }
}

fn validation_lines(node: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let num = |k: &str| node.get(k).map(compact_number);
    if let Some(v) = num("minimum") {
        lines.push(format!("minimum {v}"));
    }
    if let Some(v) = num("maximum") {
        lines.push(format!("maximum {v}"));
    }
    if let Some(v) = num("minLength") {
        lines.push(format!("at least {v} characters"));
    }
    if let Some(v) = num("maxLength") {
        lines.push(format!("at most {v} characters"));
    }
    if let Some(v) = num("minItems") {
        lines.push(format!("at least {v} items"));
    }
    if let Some(v) = num("maxItems") {
        lines.push(format!("at most {v} items"));
    }
    if let Some(p) = node.get("pattern").and_then(Value::as_str) {
        lines.push(format!("pattern `{p}`"));
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", compact(v))).collect();
        lines.push(format!("one of {}", values.join(", ")));
    }
    if let Some(items) = node.get("items") {
        for inner in validation_lines(items) {
            lines.push(format!("each item: {inner}"));
        }
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let keys: Vec<String> = node
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().map(|v| format!("`{}`", compact(v))).collect())
            .unwrap_or_default();
        lines.push(format!(
            "a map keyed by {}: one entry per key",
            keys.join(", ")
        ));
    }
    if let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            let expr = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            lines.push(format!("CEL `{expr}`: \"{message}\""));
        }
    }
    lines
}

/// `1.0` as `1`, `0.5` as `0.5`.
fn compact_number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => compact(v),
    }
}
