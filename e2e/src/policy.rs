//! WatchPolicy manifests for the scenarios, with the short timeouts that keep each scenario
//! within seconds (`idle: 3s`, `backoff: {initial: 200ms, max: 2s}`), and readers of the status
//! the operator writes.

use serde_json::{Value, json};
use watchpool_api::{TargetStatus, WatchPolicy};

/// One target of a test policy.
#[derive(Clone, Debug)]
pub struct TestTarget {
    /// `apiVersion` of the kind.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// `namespaces` (empty: the policy's own).
    pub namespaces: Vec<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `metadataOnly`.
    pub metadata_only: bool,
}

impl TestTarget {
    /// A target on `apiVersion`/`kind` in the policy's own namespace.
    pub fn new(api_version: &str, kind: &str) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaces: Vec::new(),
            label_selector: None,
            metadata_only: false,
        }
    }

    /// ConfigMaps in the policy's own namespace.
    pub fn configmaps() -> Self {
        Self::new("v1", "ConfigMap")
    }

    /// Watches these namespaces instead.
    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = namespaces.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn to_json(&self) -> Value {
        let mut target = json!({"apiVersion": self.api_version, "kind": self.kind});
        if !self.namespaces.is_empty() {
            target["namespaces"] = json!(self.namespaces);
        }
        if let Some(selector) = &self.label_selector {
            target["labelSelector"] = json!(selector);
        }
        if self.metadata_only {
            target["metadataOnly"] = json!(true);
        }
        target
    }
}

/// A WatchPolicy with test-sized timeouts.
#[derive(Clone, Debug)]
pub struct TestPolicy {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.targets`.
    pub targets: Vec<TestTarget>,
    /// `spec.timeouts.watch`.
    pub watch: String,
    /// `spec.timeouts.idle`.
    pub idle: String,
    /// `spec.timeouts.request`.
    pub request: String,
    /// `spec.timeouts.resync`.
    pub resync: String,
    /// `spec.backoff.initial`.
    pub initial: String,
    /// `spec.backoff.max`.
    pub max: String,
    /// `spec.backoff.jitter`.
    pub jitter: f64,
    /// `spec.backoff.resetAfter`.
    pub reset_after: String,
    /// `spec.backoff.maxRetries`.
    pub max_retries: u32,
    /// `spec.limits.cpu`.
    pub cpu: String,
    /// `spec.limits.maxEventSize`.
    pub max_event_size: String,
    /// `spec.suspend`.
    pub suspend: bool,
}

impl TestPolicy {
    /// A policy `name` in `namespace` watching its own namespace's ConfigMaps, with
    /// `idle: 3s`, `request: 2s`, `watch: 60s` and `backoff: {initial: 200ms, max: 2s}`. On a
    /// real cluster `idle` is `90s`: a real API server sends a bookmark only about once a
    /// minute, so a quiet healthy watch would look idle after 3 s (the emulator's bookmarks
    /// come every second).
    pub fn configmaps(name: &str, namespace: &str) -> Self {
        let idle = if crate::env::Env::real_cluster() {
            "90s"
        } else {
            "3s"
        };
        Self {
            name: name.into(),
            namespace: namespace.into(),
            targets: vec![TestTarget::configmaps()],
            watch: "60s".into(),
            idle: idle.into(),
            request: "2s".into(),
            resync: "0s".into(),
            initial: "200ms".into(),
            max: "2s".into(),
            jitter: 0.2,
            reset_after: "10s".into(),
            max_retries: 0,
            cpu: "200m".into(),
            max_event_size: "1Mi".into(),
            suspend: false,
        }
    }

    /// The manifest as a JSON value.
    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "watchpool.dev/v1alpha1",
            "kind": "WatchPolicy",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "suspend": self.suspend,
                "targets": self.targets.iter().map(TestTarget::to_json).collect::<Vec<_>>(),
                "timeouts": {
                    "watch": self.watch,
                    "idle": self.idle,
                    "request": self.request,
                    "resync": self.resync,
                },
                "backoff": {
                    "initial": self.initial,
                    "max": self.max,
                    "factor": 2,
                    "jitter": self.jitter,
                    "resetAfter": self.reset_after,
                    "maxRetries": self.max_retries,
                },
                "limits": {"cpu": self.cpu, "maxEventSize": self.max_event_size},
            }
        })
    }

    /// The manifest as text for `kubectl apply -f -` (JSON is YAML).
    pub fn manifest(&self) -> String {
        self.to_json().to_string()
    }
}

/// A condition of a policy's status.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionView {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

/// The condition `type_` of `policy`, if set.
pub fn condition(policy: &WatchPolicy, type_: &str) -> Option<ConditionView> {
    policy
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| ConditionView {
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
}

/// True when `Ready=True` and the status describes the current generation.
pub fn is_ready(policy: &WatchPolicy) -> bool {
    let current =
        policy.status.as_ref().and_then(|s| s.observed_generation) == policy.metadata.generation;
    current && condition(policy, "Ready").is_some_and(|c| c.status == "True")
}

/// The status entry of the watch of `kind` in `namespace` ("" when cluster-wide).
pub fn target<'a>(
    policy: &'a WatchPolicy,
    kind: &str,
    namespace: &str,
) -> Option<&'a TargetStatus> {
    policy
        .status
        .as_ref()?
        .targets
        .iter()
        .find(|t| t.kind == kind && t.namespace == namespace)
}

/// A one-line summary of a policy's status, for failure messages.
pub fn summary(policy: &WatchPolicy) -> String {
    let Some(status) = &policy.status else {
        return "no status".into();
    };
    let ready = condition(policy, "Ready")
        .map(|c| format!("Ready={} ({}: {})", c.status, c.reason, c.message))
        .unwrap_or_else(|| "no Ready condition".into());
    let targets: Vec<String> = status
        .targets
        .iter()
        .map(|t| {
            format!(
                "{}/{}@{}={:?} objects={} reconnects={} relists={} failures={} error={:?}",
                t.api_version,
                t.kind,
                t.namespace,
                t.state,
                t.objects,
                t.reconnects,
                t.relists,
                t.consecutive_failures,
                t.last_error.as_ref().map(|e| e.reason)
            )
        })
        .collect();
    format!(
        "gen={:?} observed={:?} {ready}; targets: [{}]",
        policy.metadata.generation,
        status.observed_generation,
        targets.join("; ")
    )
}
