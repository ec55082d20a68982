//! Patch semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902) with the `test`-on-missing
//! rule, the strategic-merge approximation and the helpers of minimal server-side apply
//! (EMULATOR.md §2.5).

use serde_json::{Map, Value};

/// The patch types the emulator understands, from the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type to a patch kind; `None` for anything else.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// Applies an RFC 6902 patch. A `test` of `null` on a missing path succeeds (the behaviour of
/// the Go library the API server uses, relied on by kube-runtime's finalizer helper). Every
/// failure gives the message for a 422.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "the JSON patch must be an array of operations".to_string())?;
    if ops.len() > 10_000 {
        return Err("the JSON patch has too many operations".into());
    }
    for op in ops {
        let is_null_test = op.get("op").and_then(Value::as_str) == Some("test")
            && op.get("value").is_some_and(Value::is_null);
        if is_null_test {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            match doc.pointer(path) {
                None | Some(Value::Null) => continue,
                Some(_) => return Err(format!("testing value {path} failed: test failed")),
            }
        }
        let parsed: json_patch::PatchOperation = serde_json::from_value(op.clone())
            .map_err(|e| format!("invalid JSON patch operation: {e}"))?;
        json_patch::patch(doc, &[parsed]).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn name_keyed(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string) || v.get("$patch").is_some())
}

/// Strategic merge patch, approximated: maps merge recursively, lists of objects that all have
/// a `name` merge by name (`$patch: delete` removes an element), other lists are replaced,
/// `$patch: replace` replaces a map, and the `$setElementOrder`/`$retainKeys` directives are
/// ignored.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *doc = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut m = pm.clone();
        m.remove("$patch");
        *doc = Value::Object(m);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(dm) = doc else { return };
    for (k, pv) in pm {
        // Directives ($setElementOrder/…, $retainKeys, $deleteFromPrimitiveList/…) are ignored.
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                dm.remove(k);
            }
            Value::Object(_) => {
                let entry = dm.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(entry, pv);
            }
            Value::Array(plist) if name_keyed(plist) => {
                let current = dm
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut out = current;
                for item in plist {
                    let name = item.get("name").cloned();
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = out
                        .iter()
                        .position(|e| name.is_some() && e.get("name") == name.as_ref());
                    match (pos, delete) {
                        (Some(i), true) => {
                            out.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge(&mut out[i], item),
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic_merge(&mut fresh, item);
                            out.push(fresh);
                        }
                    }
                }
                dm.insert(k.clone(), Value::Array(out));
            }
            other => {
                dm.insert(k.clone(), other.clone());
            }
        }
    }
}

/// Deep merge for server-side apply: maps merge recursively; `name`-keyed lists merge by name
/// when `merge_named_lists` (built-ins), other lists are replaced.
pub fn apply_merge(doc: &mut Value, cfg: &Value, merge_named_lists: bool) {
    match (doc, cfg) {
        (Value::Object(dm), Value::Object(cm)) => {
            for (k, cv) in cm {
                match dm.get_mut(k) {
                    Some(dv) => apply_merge(dv, cv, merge_named_lists),
                    None => {
                        dm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(dl), Value::Array(cl))
            if merge_named_lists && name_keyed(cl) && name_keyed(dl) =>
        {
            let mut out = Vec::with_capacity(cl.len());
            for item in cl {
                let existing = dl.iter().find(|e| e.get("name") == item.get("name"));
                match existing {
                    Some(e) => {
                        let mut e = e.clone();
                        apply_merge(&mut e, item, merge_named_lists);
                        out.push(e);
                    }
                    None => out.push(item.clone()),
                }
            }
            *dl = out;
        }
        (d, c) => *d = c.clone(),
    }
}

/// Removes from `doc` every field present in `prev` but absent from `now` (fields a manager
/// applied before and omits now), unless `keep` (other managers' configs) also has it.
pub fn remove_omitted(doc: &mut Value, prev: &Value, now: &Value, keep: &[&Value]) {
    let (Value::Object(dm), Value::Object(pm)) = (doc, prev) else {
        return;
    };
    for (k, pv) in pm {
        let nv = now.get(k);
        let kept: Vec<&Value> = keep.iter().filter_map(|o| o.get(k)).collect();
        match nv {
            None => {
                if kept.is_empty() {
                    dm.remove(k);
                } else if let Some(dv) = dm.get_mut(k) {
                    remove_omitted(dv, pv, &Value::Null, &kept);
                }
            }
            Some(nv) if pv.is_object() && nv.is_object() => {
                if let Some(dv) = dm.get_mut(k) {
                    remove_omitted(dv, pv, nv, &kept);
                }
            }
            Some(_) => {}
        }
    }
}

/// Leaf fields (`.spec.x`) of an applied configuration that another Apply manager still owns
/// with a different value: the other manager applied the field, the object still holds what it
/// applied, and `cfg` wants something else. Lists count as leaves.
pub fn apply_conflicts(cfg: &Value, other_cfg: &Value, current: &Value) -> Vec<String> {
    let mut out = Vec::new();
    conflicts_at(cfg, other_cfg, current, "", &mut out);
    out
}

fn conflicts_at(cfg: &Value, other: &Value, current: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(cm) = cfg else { return };
    for (k, cv) in cm {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
            continue;
        }
        let (Some(ov), Some(cur)) = (other.get(k), current.get(k)) else {
            continue;
        };
        let here = format!("{path}.{k}");
        if cv.is_object() && ov.is_object() {
            conflicts_at(cv, ov, cur, &here, out);
        } else if ov == cur && cv != ov {
            out.push(here);
        }
    }
}

/// `fieldsV1` of an applied configuration: `{"f:spec":{"f:x":{}}}` (lists as leaves).
pub fn fields_v1(cfg: &Value) -> Value {
    match cfg {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if k == "apiVersion" || k == "kind" {
                    continue;
                }
                let inner = if v.is_object() {
                    fields_v1(v)
                } else {
                    Value::Object(Map::new())
                };
                out.insert(format!("f:{k}"), inner);
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_null_test_on_missing_path_succeeds() {
        let mut doc = json!({"metadata": {"name": "a"}});
        let ops = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}
        ]);
        json_patch(&mut doc, &ops).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["x"]));
    }

    #[test]
    fn json_patch_failed_test_is_an_error() {
        let mut doc = json!({"metadata": {"finalizers": ["x"]}});
        let ops = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
        assert!(json_patch(&mut doc, &ops).is_err());
        let ops = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "y"}]);
        assert!(json_patch(&mut doc, &ops).is_err());
    }

    #[test]
    fn strategic_merge_merges_name_keyed_lists_and_deletes() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}, "data": {"x": "1"}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "3"}],
                                    "$setElementOrder/containers": [{"name": "a"}]},
                           "data": {"x": null, "y": "2"}});
        strategic_merge(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "c", "image": "3"}]}, "data": {"y": "2"}})
        );
    }

    #[test]
    fn apply_conflicts_only_on_fields_another_manager_still_owns() {
        let current = json!({"spec": {"holder": "a", "renew": "t1", "free": 1}});
        let other = json!({"spec": {"holder": "a", "renew": "t0"}});
        let mine = json!({"apiVersion": "v1", "kind": "L", "spec": {"holder": "b", "renew": "t2", "free": 2}});
        // `renew` was changed since the other manager applied it: no longer its value.
        assert_eq!(apply_conflicts(&mine, &other, &current), [".spec.holder"]);
        let same = json!({"spec": {"holder": "a"}});
        assert!(apply_conflicts(&same, &other, &current).is_empty());
    }

    #[test]
    fn remove_omitted_keeps_fields_of_other_managers() {
        let mut doc = json!({"spec": {"a": 1, "b": 2, "c": 3}});
        let prev = json!({"spec": {"a": 1, "b": 2}});
        let now = json!({"spec": {"a": 1}});
        let other = json!({"spec": {"c": 3}});
        remove_omitted(&mut doc, &prev, &now, &[&other]);
        assert_eq!(doc, json!({"spec": {"a": 1, "c": 3}}));
    }
}
