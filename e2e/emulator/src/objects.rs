//! In-process object access with the same semantics (and watch events) as the HTTP API.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::patch::PatchKind;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{DeleteOpts, Store, WriteOpts};

fn str_field<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Resolves a resource from apiVersion and kind, plural, singular or short name.
pub(crate) fn resolve(
    store: &Store,
    api_version: &str,
    kind_or_plural: &str,
) -> Result<Arc<ResourceInfo>, ApiError> {
    store.resolve(api_version, kind_or_plural).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({api_version} {kind_or_plural})"
            ),
        )
    })
}

fn target(store: &Store, obj: &Value) -> Result<(Arc<ResourceInfo>, String, String), ApiError> {
    let res = resolve(
        store,
        str_field(obj, "/apiVersion"),
        str_field(obj, "/kind"),
    )?;
    let ns = if res.namespaced {
        match str_field(obj, "/metadata/namespace") {
            "" => "default".to_string(),
            ns => ns.to_string(),
        }
    } else {
        String::new()
    };
    Ok((res, ns, str_field(obj, "/metadata/name").to_string()))
}

/// Creates an object (namespace from `metadata.namespace`, default `default`).
pub(crate) fn create(store: &Arc<Store>, obj: Value) -> Result<Value, ApiError> {
    let (res, ns, _) = target(store, &obj)?;
    store.create(&res, &ns, obj, &WriteOpts::default())
}

/// Creates an object without schema defaulting and validation of custom resources.
pub(crate) fn create_unvalidated(store: &Arc<Store>, obj: Value) -> Result<Value, ApiError> {
    let (res, ns, _) = target(store, &obj)?;
    let opts = WriteOpts {
        skip_admission: true,
        ..WriteOpts::default()
    };
    store.create(&res, &ns, obj, &opts)
}

/// Replaces an object; without `metadata.resourceVersion` the update is unconditional.
pub(crate) fn update(store: &Arc<Store>, mut obj: Value, status: bool) -> Result<Value, ApiError> {
    let (res, ns, name) = target(store, &obj)?;
    if str_field(&obj, "/metadata/resourceVersion").is_empty() {
        let current = store.get(&res, &ns, &name)?;
        let rv = str_field(&current, "/metadata/resourceVersion").to_string();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv));
        }
    }
    store.update(&res, &ns, &name, obj, &WriteOpts::default(), status)
}

/// Creates the object, or replaces it unconditionally when it exists. Returns 201 or 200.
pub(crate) fn upsert(store: &Arc<Store>, obj: Value) -> Result<(u16, Value), ApiError> {
    let (res, ns, name) = target(store, &obj)?;
    if !name.is_empty() && store.get(&res, &ns, &name).is_ok() {
        return update(store, obj, false).map(|v| (200, v));
    }
    create(store, obj).map(|v| (201, v))
}

/// Applies a merge patch (main endpoint, or `/status`).
pub(crate) fn merge_patch(
    store: &Arc<Store>,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    patch: Value,
    status: bool,
) -> Result<Value, ApiError> {
    let res = resolve(store, api_version, kind)?;
    let ns = if res.namespaced { namespace } else { "" };
    store
        .patch(
            &res,
            ns,
            name,
            PatchKind::Merge,
            patch,
            &WriteOpts::default(),
            status && res.status_subresource,
        )
        .map(|(_, v)| v)
}

/// Deletes an object (background propagation).
pub(crate) fn delete(
    store: &Arc<Store>,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let res = resolve(store, api_version, kind)?;
    let ns = if res.namespaced { namespace } else { "" };
    store.delete(&res, ns, name, &DeleteOpts::default())
}

/// Gets an object.
pub(crate) fn get(
    store: &Arc<Store>,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let res = resolve(store, api_version, kind)?;
    let ns = if res.namespaced { namespace } else { "" };
    store.get(&res, ns, name).map(|o| (*o).clone())
}

/// Lists objects of a kind (`None`: every namespace).
pub(crate) fn list(
    store: &Arc<Store>,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let res = resolve(store, api_version, kind)?;
    let ns = if res.namespaced { namespace } else { None };
    let page = store.list(
        &res,
        ns,
        &LabelSelector::default(),
        &FieldSelector::default(),
        None,
        None,
    )?;
    Ok(page.items.iter().map(|o| (**o).clone()).collect())
}
