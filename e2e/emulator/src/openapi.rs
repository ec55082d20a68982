//! OpenAPI v3 documents (`/openapi/v3` and per group-version), as kubectl apply/explain and helm
//! need them (EMULATOR.md §1.3).

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// `GET /openapi/v3`: one entry per served group-version, each URL carrying a hash of its
/// document's content.
pub fn root(resources: &[ResourceInfo]) -> Value {
    let _ = resources;
    json!({ "paths": {} })
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`; `None` when no resource of
/// that group-version is served.
pub fn group_version_doc(group: &str, version: &str, resources: &[ResourceInfo]) -> Option<Value> {
    let _ = (group, version, resources);
    None
}
