//! Resolves a target's kind through the API server's discovery document of its group-version:
//! the resource's plural, its scope, and whether it exists at all.

use std::time::Duration;

use serde::Deserialize;

use crate::health::WatchKey;
use crate::request::{RequestError, send_bounded};

/// Where and how a kind is listed and watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedKind {
    /// The resource's plural name (`pods`).
    pub plural: String,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The collection's URL path for this watch (`/api/v1/namespaces/shop/pods`). A namespaced
    /// watch of a cluster-scoped kind becomes cluster-wide.
    pub collection_path: String,
    /// The namespace actually watched (`None` when cluster-wide).
    pub namespace: Option<String>,
}

#[derive(Deserialize)]
struct ResourceList {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    name: String,
    #[serde(default)]
    namespaced: bool,
    kind: String,
    #[serde(default)]
    verbs: Vec<String>,
}

/// The discovery path of a group-version: `/api/v1` for the core group, `/apis/g/v` otherwise.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Finds `key`'s kind in its group-version's resource list. A group-version or kind the server
/// does not serve (or does not let us list and watch) is [`RequestError::KindNotFound`].
pub async fn resolve(
    client: &kube::Client,
    key: &WatchKey,
    timeout: Duration,
) -> Result<ResolvedKind, RequestError> {
    let target = &key.target;
    let gv_path = group_version_path(&target.group, &target.version);
    let request = http::Request::get(gv_path.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| RequestError::Build(e.to_string()))?;
    let body = match send_bounded(client, request, timeout, 16 * 1024 * 1024).await {
        Ok(body) => body,
        Err(RequestError::Status(status)) if status.code == 404 => {
            return Err(RequestError::KindNotFound(target.api_version.clone()));
        }
        Err(e) => return Err(e),
    };
    let list: ResourceList =
        serde_json::from_slice(&body).map_err(|e| RequestError::Decode(e.to_string()))?;
    let resource = list
        .resources
        .into_iter()
        .find(|r| !r.name.contains('/') && r.kind == target.kind)
        .ok_or_else(|| {
            RequestError::KindNotFound(format!("{} {}", target.api_version, target.kind))
        })?;
    let has_verb = |verb: &str| resource.verbs.iter().any(|v| v == verb);
    let watchable = resource.verbs.is_empty() || (has_verb("list") && has_verb("watch"));
    if !watchable {
        return Err(RequestError::KindNotFound(format!(
            "{} {} (not listable and watchable)",
            target.api_version, target.kind
        )));
    }
    let namespace = if resource.namespaced {
        key.namespace.clone()
    } else {
        None
    };
    let collection_path = match &namespace {
        Some(ns) => format!("{gv_path}/namespaces/{ns}/{}", resource.name),
        None => format!("{gv_path}/{}", resource.name),
    };
    Ok(ResolvedKind {
        plural: resource.name,
        namespaced: resource.namespaced,
        collection_path,
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::group_version_path;

    #[test]
    fn core_group_lives_under_api_and_others_under_apis() {
        assert_eq!(group_version_path("", "v1"), "/api/v1");
        assert_eq!(group_version_path("apps", "v1"), "/apis/apps/v1");
    }
}
