//! The built-in kinds the emulator serves, and the conversion of a CRD into the resources it
//! registers (EMULATOR.md §1.4, §9 P0.4).

use serde_json::Value;

use crate::registry::{PrinterColumn, ResourceInfo};

/// The verbs of an ordinary resource.
pub const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    categories: &'static [&'static str],
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short: &["ns"],
        status: true,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short: &["cm"],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short: &["sa"],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short: &["svc"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short: &["po"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        namespaced: true,
        short: &["ep"],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short: &["no"],
        status: true,
        categories: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short: &["deploy"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        namespaced: true,
        short: &["rs"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        namespaced: true,
        short: &["sts"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true,
        short: &["ds"],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        namespaced: true,
        short: &[],
        status: true,
        categories: &["all"],
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short: &["crd", "crds"],
        status: true,
        categories: &["api-extensions"],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short: &[],
        status: false,
        categories: &[],
    },
    Builtin {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        short: &["pdb"],
        status: true,
        categories: &[],
    },
];

/// Every built-in resource.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|b| ResourceInfo {
            group: b.group.into(),
            version: b.version.into(),
            kind: b.kind.into(),
            list_kind: format!("{}List", b.kind),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            categories: b.categories.iter().map(|s| s.to_string()).collect(),
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
            status_subresource: b.status,
            printer_columns: Vec::new(),
            schema: None,
            custom: false,
        })
        .collect()
}

/// True when the kind has `metadata.generation` (CRs and the workload-like built-ins).
pub fn has_generation(res: &ResourceInfo) -> bool {
    res.custom
        || matches!(
            res.plural.as_str(),
            "deployments"
                | "replicasets"
                | "statefulsets"
                | "daemonsets"
                | "jobs"
                | "customresourcedefinitions"
                | "poddisruptionbudgets"
        ) && !res.group.is_empty()
}

/// True when a field may be used in a field selector on this resource.
pub fn field_allowed(res: &ResourceInfo, selectable: &[String], field: &str) -> bool {
    if field == "metadata.name" || field == "metadata.namespace" {
        return true;
    }
    if res.custom {
        return selectable.iter().any(|f| f == field);
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("" | "events.k8s.io", "events") => {
            field.starts_with("involvedObject.")
                || field.starts_with("regarding.")
                || matches!(field, "reason" | "reportingComponent" | "source" | "type")
        }
        ("", "secrets") => field == "type",
        ("", "namespaces") => field == "status.phase",
        ("", "pods") => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        ),
        ("", "nodes") => field == "spec.unschedulable",
        ("apps", "replicasets") => field == "status.replicas",
        ("batch", "jobs") => field == "status.successful",
        _ => false,
    }
}

/// True for the two views of Events: core `v1 events` and `events.k8s.io/v1 events`.
pub fn is_event(res: &ResourceInfo) -> bool {
    res.plural == "events" && (res.group.is_empty() || res.group == "events.k8s.io")
}

fn move_field(
    from: &mut serde_json::Map<String, Value>,
    to: &mut serde_json::Map<String, Value>,
    a: &str,
    b: &str,
) {
    if let Some(v) = from.remove(a) {
        to.insert(b.to_string(), v);
    }
}

/// Converts an Event between its core/v1 and events.k8s.io/v1 shapes (one storage, two APIs,
/// as on a real server): `regarding`↔`involvedObject`, `note`↔`message`,
/// `reportingController`↔`source.component`, `deprecated*`↔first/last timestamps and count.
pub fn convert_event(obj: &Value, to_events_k8s_io: bool) -> Value {
    let Some(src) = obj.as_object() else {
        return obj.clone();
    };
    let mut from = src.clone();
    let mut out = serde_json::Map::new();
    for k in [
        "metadata",
        "eventTime",
        "series",
        "action",
        "reason",
        "type",
        "related",
        "reportingInstance",
    ] {
        move_field(&mut from, &mut out, k, k);
    }
    if to_events_k8s_io {
        out.insert(
            "apiVersion".into(),
            Value::String("events.k8s.io/v1".into()),
        );
        move_field(&mut from, &mut out, "involvedObject", "regarding");
        move_field(&mut from, &mut out, "message", "note");
        move_field(
            &mut from,
            &mut out,
            "firstTimestamp",
            "deprecatedFirstTimestamp",
        );
        move_field(
            &mut from,
            &mut out,
            "lastTimestamp",
            "deprecatedLastTimestamp",
        );
        move_field(&mut from, &mut out, "count", "deprecatedCount");
        let controller = from
            .remove("reportingComponent")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .or_else(|| from.get("source").and_then(|s| s.get("component")).cloned());
        if let Some(c) = controller {
            out.insert("reportingController".into(), c);
        }
        if !out.contains_key("reportingInstance")
            && let Some(h) = from.get("source").and_then(|s| s.get("host")).cloned()
        {
            out.insert("reportingInstance".into(), h);
        }
        move_field(&mut from, &mut out, "source", "deprecatedSource");
    } else {
        out.insert("apiVersion".into(), Value::String("v1".into()));
        move_field(&mut from, &mut out, "regarding", "involvedObject");
        move_field(&mut from, &mut out, "note", "message");
        move_field(
            &mut from,
            &mut out,
            "deprecatedFirstTimestamp",
            "firstTimestamp",
        );
        move_field(
            &mut from,
            &mut out,
            "deprecatedLastTimestamp",
            "lastTimestamp",
        );
        move_field(&mut from, &mut out, "deprecatedCount", "count");
        let mut source = from
            .remove("deprecatedSource")
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        if let Some(c) = from.remove("reportingController") {
            source.entry("component").or_insert_with(|| c.clone());
            out.insert("reportingComponent".into(), c);
        }
        if let Some(h) = out.get("reportingInstance").cloned() {
            source.entry("host").or_insert(h);
        }
        if !source.is_empty() {
            out.insert("source".into(), Value::Object(source));
        }
    }
    out.insert("kind".into(), Value::String("Event".into()));
    // Anything else is carried over unchanged.
    for (k, v) in from {
        if k != "apiVersion" && k != "kind" {
            out.entry(k).or_insert(v);
        }
    }
    Value::Object(out)
}

/// Sort key of a Kubernetes version string: GA before beta before alpha, higher first.
pub fn version_priority(v: &str) -> (u8, u64, u64, String) {
    let parse = || -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: u64 = if num.is_empty() { 0 } else { num.parse().ok()? };
        Some((level, major, minor))
    };
    match parse() {
        // Higher numbers first: invert them.
        Some((level, major, minor)) => (level, u64::MAX - major, u64::MAX - minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a CRD's names; returns a message for a 422 when they are unusable.
pub fn validate_crd(crd: &Value) -> Result<(), String> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() {
        return Err("spec.group: Required value".into());
    }
    if plural.is_empty() {
        return Err("spec.names.plural: Required value".into());
    }
    if kind.is_empty() {
        return Err("spec.names.kind: Required value".into());
    }
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    if versions.is_none_or(|v| v.is_empty()) {
        return Err("spec.versions: Invalid value: null: must have exactly one version marked as storage version".into());
    }
    Ok(())
}

/// Fills `spec.names.singular` and `spec.names.listKind` when absent.
pub fn default_crd_names(crd: &mut Value) {
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("singular".into(), Value::String(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("listKind".into(), Value::String(format!("{kind}List")));
        }
    }
}

/// The resources a CRD serves: one per `served` version, preferred (highest priority) first.
pub fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out: Vec<ResourceInfo> = spec["versions"]
        .as_array()
        .map(|vs| vs.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceInfo {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("").to_string(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: str_list(names.get("shortNames")),
            categories: str_list(names.get("categories")),
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
            status_subresource: v.pointer("/subresources/status").is_some(),
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: c["name"].as_str().unwrap_or("").to_string(),
                            type_: c["type"].as_str().unwrap_or("string").to_string(),
                            format: c["format"].as_str().unwrap_or("").to_string(),
                            description: c["description"].as_str().unwrap_or("").to_string(),
                            priority: c["priority"].as_i64().unwrap_or(0) as i32,
                            json_path: c["jsonPath"].as_str().unwrap_or("").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            custom: true,
        })
        .collect();
    out.sort_by_key(|r| version_priority(&r.version));
    out
}

/// The `selectableFields` of every version of a CRD, as field labels (`spec.color`).
pub fn crd_selectable_fields(crd: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| v.as_slice())
        .unwrap_or(&[])
    {
        for f in v["selectableFields"]
            .as_array()
            .map(|v| v.as_slice())
            .unwrap_or(&[])
        {
            if let Some(p) = f["jsonPath"].as_str() {
                out.push(p.trim_start_matches('.').to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_convert_between_core_and_events_k8s_io() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started", "type": "Normal",
            "reportingController": "ctl", "reportingInstance": "ctl-1", "eventTime": "2026-01-01T00:00:00.000000Z"});
        let core = convert_event(&ev, false);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["source"], json!({"component": "ctl", "host": "ctl-1"}));
        assert_eq!(core["reportingComponent"], "ctl");
        let back = convert_event(&core, true);
        assert_eq!(back["regarding"], ev["regarding"]);
        assert_eq!(back["note"], "hello");
        assert_eq!(back["reportingController"], "ctl");
        assert_eq!(
            back["deprecatedSource"],
            json!({"component": "ctl", "host": "ctl-1"})
        );
    }

    #[test]
    fn versions_sort_ga_then_beta_then_alpha() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo"];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn crd_resources_carry_names_status_and_columns() {
        let crd = json!({"metadata": {"name": "widgets.ex.dev"}, "spec": {"group": "ex.dev", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                          "additionalPrinterColumns": [{"name": "Ready", "type": "string", "jsonPath": ".status.ready"}]},
                         {"name": "v1", "served": true, "storage": false}]}});
        assert!(validate_crd(&crd).is_ok());
        let rs = crd_resources(&crd);
        assert_eq!(rs[0].version, "v1");
        assert_eq!(rs[1].version, "v1alpha1");
        assert!(rs[1].status_subresource && !rs[0].status_subresource);
        assert_eq!(rs[1].printer_columns[0].json_path, ".status.ready");
        assert_eq!(rs[0].list_kind, "WidgetList");
        assert_eq!(rs[0].singular, "widget");
    }
}
