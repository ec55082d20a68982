//! The operator's `/debug/pools` as the tests read it: per policy, per watch, the state and a
//! count and digest of the cache.

use serde::Deserialize;

/// One watch of a pool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DebugWatch {
    /// Target apiVersion.
    #[serde(default)]
    pub api_version: String,
    /// Target kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace watched; `""` when cluster-wide.
    #[serde(default)]
    pub namespace: String,
    /// Target state.
    #[serde(default)]
    pub state: String,
    /// Objects in the cache.
    #[serde(default)]
    pub count: u64,
    /// Digest of the cached (uid, resourceVersion) pairs.
    #[serde(default)]
    pub digest: String,
}

/// One policy's pool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DebugPolicy {
    /// Policy namespace.
    pub namespace: String,
    /// Policy name.
    pub name: String,
    /// `Running`, `Suspended` or `InvalidSpec`.
    #[serde(default)]
    pub phase: String,
    /// The pool's watches.
    #[serde(default)]
    pub watches: Vec<DebugWatch>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    List(Vec<DebugPolicy>),
    Wrapped { pools: Vec<DebugPolicy> },
    Policies { policies: Vec<DebugPolicy> },
}

/// Decodes a `/debug/pools` document (a list of policies, or `{"pools": [...]}`).
pub fn parse(value: serde_json::Value) -> Result<Vec<DebugPolicy>, serde_json::Error> {
    Ok(match serde_json::from_value(value)? {
        Shape::List(p) | Shape::Wrapped { pools: p } | Shape::Policies { policies: p } => p,
    })
}

/// The policy `namespace/name`.
pub fn policy<'a>(
    pools: &'a [DebugPolicy],
    namespace: &str,
    name: &str,
) -> Option<&'a DebugPolicy> {
    pools
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
}

/// The watch of `kind` in `watch_namespace` of policy `namespace/name`.
pub fn watch<'a>(
    pools: &'a [DebugPolicy],
    namespace: &str,
    name: &str,
    kind: &str,
    watch_namespace: &str,
) -> Option<&'a DebugWatch> {
    policy(pools, namespace, name)?
        .watches
        .iter()
        .find(|w| w.kind == kind && w.namespace == watch_namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_the_list_and_the_wrapped_shapes() {
        let doc = serde_json::json!([{"namespace": "a", "name": "p", "phase": "Running",
            "watches": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "a",
                         "state": "Watching", "count": 2, "digest": "00ff"}]}]);
        let pools = parse(doc.clone()).unwrap();
        let w = watch(&pools, "a", "p", "ConfigMap", "a").unwrap();
        assert_eq!(
            (w.count, w.digest.as_str(), w.state.as_str()),
            (2, "00ff", "Watching")
        );
        let wrapped = parse(serde_json::json!({"pools": doc})).unwrap();
        assert_eq!(wrapped, pools);
        assert!(watch(&pools, "a", "p", "Secret", "a").is_none());
    }
}
