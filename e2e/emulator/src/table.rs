//! `meta.k8s.io/v1` Table responses for `kubectl get` (EMULATOR.md §5).
//!
//! Columns are `Name` followed by the resource's printer columns (a CRD's
//! `additionalPrinterColumns`), or by a built-in printer's columns for a few core kinds, or by
//! the default `Age`. Cells are evaluated with [`crate::jsonpath`]; `date` cells become a human
//! duration (`5s`, `3m`, `2d3h`) following kubectl's `HumanDuration` rules.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::jsonpath;
use crate::registry::{PrinterColumn, ResourceInfo};

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object in the rows.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; unknown or absent gives the default.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// True when an `Accept` header asks for a Table (`as=Table`).
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// How a built-in printer computes a cell that plain JSONPath cannot express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    /// Number of entries of `data` plus `binaryData` (ConfigMap, Secret).
    DataCount,
    /// `readyReplicas/replicas` (Deployment, ReplicaSet, StatefulSet).
    ReadyOfDesired,
    /// Number of `secrets` (ServiceAccount).
    SecretCount,
}

/// A column as the table builder uses it.
#[derive(Clone, Debug)]
struct Column {
    def: PrinterColumn,
    special: Option<Special>,
}

fn col(name: &str, type_: &str, json_path: &str, description: &str) -> Column {
    Column {
        def: PrinterColumn {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: description.to_string(),
            priority: 0,
            json_path: json_path.to_string(),
        },
        special: None,
    }
}

fn special(name: &str, type_: &str, description: &str, kind: Special) -> Column {
    Column {
        special: Some(kind),
        ..col(name, type_, "", description)
    }
}

fn age() -> Column {
    col(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        AGE_DESCRIPTION,
    )
}

/// The columns after `Name` for `resource`.
fn columns(resource: &ResourceInfo) -> Vec<Column> {
    if !resource.printer_columns.is_empty() {
        return resource
            .printer_columns
            .iter()
            .map(|c| Column {
                def: c.clone(),
                special: None,
            })
            .collect();
    }
    if resource.custom {
        return vec![age()];
    }
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "ConfigMap") => vec![
            special(
                "Data",
                "integer",
                "Number of data entries",
                Special::DataCount,
            ),
            age(),
        ],
        ("", "Secret") => vec![
            col("Type", "string", ".type", "The type of the secret"),
            special(
                "Data",
                "integer",
                "Number of data entries",
                Special::DataCount,
            ),
            age(),
        ],
        ("", "Namespace") => vec![
            col(
                "Status",
                "string",
                ".status.phase",
                "The status of the namespace",
            ),
            age(),
        ],
        ("", "ServiceAccount") => vec![
            special(
                "Secrets",
                "integer",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                Special::SecretCount,
            ),
            age(),
        ],
        ("apps", "Deployment") => vec![
            special(
                "Ready",
                "string",
                "Number of the pod with ready state",
                Special::ReadyOfDesired,
            ),
            col(
                "Up-to-date",
                "string",
                ".status.updatedReplicas",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                ".status.availableReplicas",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age(),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            col(
                "Holder",
                "string",
                ".spec.holderIdentity",
                "The holder of the lease",
            ),
            age(),
        ],
        _ => vec![age()],
    }
}

/// Builds a Table of `objects` for `resource`; `list_metadata` becomes the table's `metadata`
/// (resourceVersion, continue).
pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    list_metadata: Value,
    now: SystemTime,
) -> Value {
    let columns = columns(resource);
    let mut definitions = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    })];
    definitions.extend(columns.iter().map(|c| {
        json!({
            "name": c.def.name,
            "type": c.def.type_,
            "format": c.def.format,
            "description": c.def.description,
            "priority": c.def.priority,
        })
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| row(&columns, obj, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn row(columns: &[Column], obj: &Value, include: IncludeObject, now: SystemTime) -> Value {
    let name = obj
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let mut cells = vec![name];
    cells.extend(columns.iter().map(|c| cell(c, obj, now)));
    let mut row = Map::new();
    row.insert("cells".to_string(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row.insert("object".to_string(), partial_object_metadata(obj));
        }
        IncludeObject::Object => {
            row.insert("object".to_string(), obj.clone());
        }
    }
    Value::Object(row)
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":…}` for `obj`.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn cell(column: &Column, obj: &Value, now: SystemTime) -> Value {
    match column.special {
        Some(Special::DataCount) => {
            let count = |key: &str| {
                obj.get(key)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            json!(count("data") + count("binaryData"))
        }
        Some(Special::SecretCount) => json!(
            obj.get("secrets")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len())
        ),
        Some(Special::ReadyOfDesired) => {
            let int = |ptr: &str| obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0);
            json!(format!(
                "{}/{}",
                int("/status/readyReplicas"),
                int("/spec/replicas")
            ))
        }
        None => {
            let value = jsonpath::eval(&column.def.json_path, obj);
            if column.def.name == "Age" && column.def.type_ == "date" && value.is_none() {
                return json!("<unknown>");
            }
            cell_for_value(&column.def.type_, value, now)
        }
    }
}

/// Converts a JSONPath result into a cell of the column's type, as the apiserver's CRD table
/// convertor does; a value of the wrong type gives `null`.
fn cell_for_value(type_: &str, value: Option<Value>, now: SystemTime) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match type_ {
        "integer" => match &value {
            Value::Number(n) => n
                .as_i64()
                .map(Value::from)
                .or_else(|| n.as_f64().map(|f| Value::from(f as i64)))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match &value {
            Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(b) => Value::Bool(b),
            _ => Value::Null,
        },
        "date" => match &value {
            Value::String(s) => match parse_timestamp(s) {
                Some(t) => Value::String(human_since(t, now)),
                None => Value::String("<invalid>".to_string()),
            },
            _ => Value::Null,
        },
        // `string` and anything unknown: strings as they are, other values as kubectl's
        // JSONPath printer renders them.
        _ => match value {
            Value::String(s) => Value::String(s),
            Value::Null => Value::Null,
            Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
            other => Value::String(other.to_string()),
        },
    }
}

fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(SystemTime::from(ts))
}

/// The human duration from `then` to `now`.
fn human_since(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(d) => human_duration(d),
        Err(e) => {
            // in the future: kubectl tolerates up to a second of clock skew
            if e.duration() < Duration::from_secs(2) {
                "0s".to_string()
            } else {
                "<invalid>".to_string()
            }
        }
    }
}

/// kubectl's `HumanDuration`: `45s`, `2m10s` (under 10 minutes), `15m` (under 3 hours),
/// `5h30m` (under 8 hours), `20h` (under 2 days), `3d4h` (under 8 days), `90d` (under 2 years),
/// `3y120d` (under 8 years), then `9y`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        if days == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, days);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        kind: &str,
        group: &str,
        custom: bool,
        columns: Vec<PrinterColumn>,
    ) -> ResourceInfo {
        ResourceInfo {
            group: group.to_string(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: format!("{}s", kind.to_lowercase()),
            singular: kind.to_lowercase(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            verbs: vec![],
            status_subresource: custom,
            printer_columns: columns,
            schema: None,
            custom,
        }
    }

    fn pc(name: &str, type_: &str, path: &str, priority: i32) -> PrinterColumn {
        PrinterColumn {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: format!("{name} column"),
            priority,
            json_path: path.to_string(),
        }
    }

    fn watch_policy() -> ResourceInfo {
        resource(
            "WatchPolicy",
            "watchpool.dev",
            true,
            vec![
                pc(
                    "Ready",
                    "string",
                    r#".status.conditions[?(@.type=="Ready")].status"#,
                    0,
                ),
                pc("Objects", "integer", ".status.objects", 0),
                pc("CPU", "number", ".status.cpu", 1),
                pc("Paused", "boolean", ".spec.paused", 0),
                pc("Age", "date", ".metadata.creationTimestamp", 0),
            ],
        )
    }

    fn now() -> SystemTime {
        SystemTime::from("2026-01-10T12:00:00Z".parse::<jiff::Timestamp>().unwrap())
    }

    fn wp(name: &str, created: &str) -> Value {
        json!({
            "apiVersion": "watchpool.dev/v1",
            "kind": "WatchPolicy",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "resourceVersion": "7"},
            "spec": {"paused": true},
            "status": {"objects": 12.0, "cpu": 1, "conditions": [{"type": "Ready", "status": "True"}]}
        })
    }

    #[test]
    fn columns_are_name_then_printer_columns_in_order() {
        let t = table(
            &watch_policy(),
            &[],
            IncludeObject::Metadata,
            json!({}),
            now(),
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Objects", "CPU", "Paused", "Age"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
        assert_eq!(t["columnDefinitions"][2]["type"], "integer");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    }

    #[test]
    fn cells_are_typed_from_jsonpath_results() {
        let t = table(
            &watch_policy(),
            &[wp("wp1", "2026-01-10T11:55:00Z")],
            IncludeObject::Metadata,
            json!({"resourceVersion": "9"}),
            now(),
        );
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["wp1", "True", 12, 1.0, true, "5m"])
        );
    }

    #[test]
    fn missing_values_are_null_cells() {
        let obj =
            json!({"metadata": {"name": "bare", "creationTimestamp": "2026-01-10T11:59:30Z"}});
        let t = table(
            &watch_policy(),
            &[obj],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["bare", null, null, null, null, "30s"])
        );
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn wrongly_typed_values_are_null_cells() {
        let obj = json!({"metadata": {"name": "odd"}, "status": {"objects": "many", "cpu": "x"}, "spec": {"paused": "yes"}});
        let t = table(
            &watch_policy(),
            &[obj],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"][2], Value::Null);
        assert_eq!(t["rows"][0]["cells"][3], Value::Null);
        assert_eq!(t["rows"][0]["cells"][4], Value::Null);
    }

    #[test]
    fn include_object_selects_row_object() {
        let obj = wp("wp1", "2026-01-10T11:00:00Z");
        let meta = table(
            &watch_policy(),
            std::slice::from_ref(&obj),
            IncludeObject::Metadata,
            json!({}),
            now(),
        );
        assert_eq!(meta["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(meta["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(meta["rows"][0]["object"]["metadata"]["name"], "wp1");
        assert!(meta["rows"][0]["object"].get("spec").is_none());
        let full = table(
            &watch_policy(),
            std::slice::from_ref(&obj),
            IncludeObject::Object,
            json!({}),
            now(),
        );
        assert_eq!(full["rows"][0]["object"], obj);
        assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
        assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
        assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
    }

    #[test]
    fn custom_resource_without_columns_gets_age() {
        let r = resource("Thing", "example.com", true, vec![]);
        let t = table(
            &r,
            &[wp("a", "2026-01-08T09:00:00Z")],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["a", "2d3h"]));
    }

    #[test]
    fn configmap_secret_and_namespace_have_builtin_printers() {
        let created = "2026-01-10T09:00:00Z";
        let cm = json!({"metadata": {"name": "cm", "creationTimestamp": created}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let t = table(
            &resource("ConfigMap", "", false, vec![]),
            &[cm],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["cm", 3, "3h"]));
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");

        let secret = json!({"metadata": {"name": "s", "creationTimestamp": created}, "type": "Opaque", "data": {"k": "dg=="}});
        let t = table(
            &resource("Secret", "", false, vec![]),
            &[secret],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["s", "Opaque", 1, "3h"]));

        let ns = json!({"metadata": {"name": "default", "creationTimestamp": created}, "status": {"phase": "Active"}});
        let t = table(
            &resource("Namespace", "", false, vec![]),
            &[ns],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["default", "Active", "3h"]));
    }

    #[test]
    fn deployment_printer_shows_ready_of_desired() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-10T11:58:00Z"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(
            &resource("Deployment", "apps", false, vec![]),
            &[d],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["web", "2/3", "3", "2", "2m"]));
    }

    #[test]
    fn other_builtins_default_to_name_and_age() {
        let obj = json!({"metadata": {"name": "svc"}});
        let t = table(
            &resource("Service", "", false, vec![]),
            &[obj],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["svc", "<unknown>"]));
    }

    #[test]
    fn unparsable_and_future_dates() {
        let r = resource("Thing", "example.com", true, vec![]);
        let bad = json!({"metadata": {"name": "a", "creationTimestamp": "yesterday"}});
        let future =
            json!({"metadata": {"name": "b", "creationTimestamp": "2026-01-10T13:00:00Z"}});
        let skew = json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-10T12:00:01Z"}});
        let t = table(
            &r,
            &[bad, future, skew],
            IncludeObject::None,
            json!({}),
            now(),
        );
        assert_eq!(t["rows"][0]["cells"][1], "<invalid>");
        assert_eq!(t["rows"][1]["cells"][1], "<invalid>");
        assert_eq!(t["rows"][2]["cells"][1], "0s");
    }

    #[test]
    fn human_duration_follows_kubectl_rules() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn table_accept_header_is_recognised() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
