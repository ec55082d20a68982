//! The CustomResourceDefinition of `WatchPolicy`, as a value and as the YAML committed in
//! `crds/watchpool.dev_watchpolicies.yaml`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::WatchPolicy;

/// The CRD of `watchpolicies.watchpool.dev`, derived from the Rust types.
pub fn crd() -> CustomResourceDefinition {
    WatchPolicy::crd()
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
