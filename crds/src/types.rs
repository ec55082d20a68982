//! The `WatchPolicy` custom resource (`watchpool.dev/v1alpha1`): spec and status.
//!
//! The spec keeps durations and quantities as the strings the user wrote, so that any object
//! the API server stores can be decoded; `WatchPolicySpec::validate` turns them into a typed
//! [`crate::PolicyConfig`] once, with a field path for every problem.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A WatchPolicy declares a pool of resilient, CPU-bounded watches and reports its health.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "watchpool.dev",
    version = "v1alpha1",
    kind = "WatchPolicy",
    plural = "watchpolicies",
    singular = "watchpolicy",
    shortname = "wp",
    category = "watchpool",
    namespaced,
    status = "WatchPolicyStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Watching","type":"integer","jsonPath":".status.watching"}"#,
    printcolumn = r#"{"name":"Targets","type":"integer","jsonPath":".status.targetCount"}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","jsonPath":".status.objects"}"#,
    printcolumn = r#"{"name":"Reconnects","type":"integer","jsonPath":".status.reconnects"}"#,
    printcolumn = r#"{"name":"CPU","type":"string","jsonPath":".status.cpu.used"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WatchPolicySpec {
    /// Stop every watch of this policy while true; targets report state `Suspended`.
    #[serde(default)]
    pub suspend: bool,
    /// The kinds to watch. At least one; no two identical.
    pub targets: Vec<WatchTarget>,
    /// Deadlines of the watches.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Retry policy after a failed list or watch, per target.
    #[serde(default)]
    pub backoff: Backoff,
    /// Resource limits of the pool.
    #[serde(default)]
    pub limits: Limits,
}

/// One kind to watch, in some namespaces or cluster-wide.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchTarget {
    /// API version of the kind, `group/version` or `v1` for the core group (e.g. `apps/v1`).
    pub api_version: String,
    /// Kind, in UpperCamelCase (e.g. `Pod`, `Deployment`).
    pub kind: String,
    /// Namespaces to watch, one watch each. Empty: the policy's own namespace. `["*"]`: the
    /// whole cluster. Other namespaces than the policy's own are allowed only for policies in a
    /// namespace the operator trusts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Label selector (`tier in (web,api),!canary`); unset watches every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Field selector (`metadata.name=web`); unset watches every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// Watch only object metadata (PartialObjectMetadata): far less memory and CPU. Secrets are
    /// always watched metadata-only unless the operator allows secret data.
    #[serde(default)]
    pub metadata_only: bool,
}

/// Deadlines of the watches. Durations are Go-style strings: `800ms`, `90s`, `5m`, `1h30m`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Lifetime asked of the API server per watch request (`timeoutSeconds`), jittered down by
    /// up to 10 % so that watches do not expire together. Default `5m`.
    #[serde(default = "default_watch")]
    pub watch: String,
    /// A watch with no event and no bookmark for this long is dead: the connection is dropped and
    /// rebuilt. Bookmarks count as life. Default `90s`.
    #[serde(default = "default_idle")]
    pub idle: String,
    /// Deadline for each list page and for the response headers of each watch. Default `30s`.
    #[serde(default = "default_request")]
    pub request: String,
    /// Period of a full relist that replaces the cache (guards against a rewound etcd). `0s`
    /// turns it off. Default `0s`.
    #[serde(default = "default_resync")]
    pub resync: String,
}

/// Retry policy after a failed list or watch, kept per target (never shared).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// First delay after a failure. Default `800ms`.
    #[serde(default = "default_initial")]
    pub initial: String,
    /// Largest delay; must not be less than `initial`. Default `30s`.
    #[serde(default = "default_max")]
    pub max: String,
    /// Multiplier per consecutive failure, at least 1. Default `2`.
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// Fraction of each delay that is randomised, from 0 (none) to 1. Default `0.5`.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Healthy watching time after which the backoff starts again from `initial`. Default `2m`.
    #[serde(default = "default_reset_after")]
    pub reset_after: String,
    /// `0` retries for ever; `N` puts a target in state `Failed` after N consecutive failures,
    /// until the policy changes. Default `0`.
    #[serde(default)]
    pub max_retries: u32,
}

/// Resource limits of the pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// CPU budget of the whole pool, a Kubernetes quantity (`100m`, `0.5`, `1`); measured and
    /// enforced by delaying the pool's work. Must be greater than zero. Default `100m`.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Most objects the pool caches across its targets; beyond it a target reports `Failed`
    /// with reason `TooManyObjects`. Default `100000`.
    #[serde(default = "default_max_objects")]
    pub max_objects: u64,
    /// Largest watch event accepted, a Kubernetes quantity of bytes (`16Mi`); a larger event
    /// closes the connection and is reported. Default `16Mi`.
    #[serde(default = "default_max_event_size")]
    pub max_event_size: String,
}

fn default_watch() -> String {
    "5m".into()
}
fn default_idle() -> String {
    "90s".into()
}
fn default_request() -> String {
    "30s".into()
}
fn default_resync() -> String {
    "0s".into()
}
fn default_initial() -> String {
    "800ms".into()
}
fn default_max() -> String {
    "30s".into()
}
fn default_factor() -> f64 {
    2.0
}
fn default_jitter() -> f64 {
    0.5
}
fn default_reset_after() -> String {
    "2m".into()
}
fn default_cpu() -> String {
    "100m".into()
}
fn default_max_objects() -> u64 {
    100_000
}
fn default_max_event_size() -> String {
    "16Mi".into()
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            watch: default_watch(),
            idle: default_idle(),
            request: default_request(),
            resync: default_resync(),
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: default_initial(),
            max: default_max(),
            factor: default_factor(),
            jitter: default_jitter(),
            reset_after: default_reset_after(),
            max_retries: 0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: default_cpu(),
            max_objects: default_max_objects(),
            max_event_size: default_max_event_size(),
        }
    }
}

/// The observed state of a WatchPolicy, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Degraded` and `CPUThrottled` (kstatus-compatible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Watches the pool runs: one per (target, namespace).
    #[serde(default)]
    pub target_count: i64,
    /// Watches currently in state `Watching`.
    #[serde(default)]
    pub watching: i64,
    /// Objects cached across all targets.
    #[serde(default)]
    pub objects: i64,
    /// Reconnects across all targets since the pool started.
    #[serde(default)]
    pub reconnects: i64,
    /// CPU used by the pool against its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStatus>,
    /// One entry per watch (target × namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
}

/// CPU used by the pool, averaged over a short sliding window.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuStatus {
    /// Average CPU used, as a quantity (`4m`).
    pub used: String,
    /// The budget, `spec.limits.cpu` normalised (`100m`).
    pub limit: String,
    /// True while the pool is being held to its budget.
    pub throttled: bool,
}

/// The state of one watch (target × namespace).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TargetState {
    /// Not started yet, or resolving the kind through discovery.
    #[default]
    Pending,
    /// Listing (initial list or relist).
    Listing,
    /// Synced and watching.
    Watching,
    /// Waiting before the next attempt after a failure (`nextRetryTime`).
    Backoff,
    /// The stream went silent for longer than `timeouts.idle`; being rebuilt.
    Stalled,
    /// The API server refused the operator's credentials (401).
    Unauthorized,
    /// The operator may not list or watch this kind here (403 or RBAC), or the policy may not.
    Forbidden,
    /// The kind does not exist (no such API resource, or its CRD is gone).
    NotFound,
    /// Gave up: `backoff.maxRetries` consecutive failures, or `limits.maxObjects` exceeded.
    Failed,
    /// `spec.suspend` is true.
    Suspended,
}

impl TargetState {
    /// Every state, for metrics that report a gauge per state.
    pub const ALL: [TargetState; 10] = [
        TargetState::Pending,
        TargetState::Listing,
        TargetState::Watching,
        TargetState::Backoff,
        TargetState::Stalled,
        TargetState::Unauthorized,
        TargetState::Forbidden,
        TargetState::NotFound,
        TargetState::Failed,
        TargetState::Suspended,
    ];

    /// The PascalCase name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "Pending",
            TargetState::Listing => "Listing",
            TargetState::Watching => "Watching",
            TargetState::Backoff => "Backoff",
            TargetState::Stalled => "Stalled",
            TargetState::Unauthorized => "Unauthorized",
            TargetState::Forbidden => "Forbidden",
            TargetState::NotFound => "NotFound",
            TargetState::Failed => "Failed",
            TargetState::Suspended => "Suspended",
        }
    }
}

/// Why a watch last failed: a small fixed set, used as condition reason, Event reason and
/// metric label alike.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ErrorReason {
    /// 410: the resourceVersion is too old (history compacted); relisted.
    Gone,
    /// The resourceVersion is ahead of the server (e.g. after a restore); relisted.
    ResourceVersionTooLarge,
    /// 429 Too Many Requests; waited at least `Retry-After`.
    Throttled,
    /// 5xx from the API server, or an ERROR event with a 5xx status.
    ServerError,
    /// 401: credentials refused.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 404: the kind or its CRD is gone.
    NotFound,
    /// Could not connect (refused, DNS, TLS).
    ConnectionFailed,
    /// The connection broke in the middle of a stream.
    ConnectionReset,
    /// A list page or a watch's response headers missed `timeouts.request`.
    RequestTimeout,
    /// No event and no bookmark for `timeouts.idle`.
    IdleTimeout,
    /// A watch ended at once with no event, again.
    EmptyWatch,
    /// A watch event or list could not be decoded.
    DecodeError,
    /// A watch event exceeded `limits.maxEventSize`.
    EventTooLarge,
    /// The pool would cache more than `limits.maxObjects`.
    TooManyObjects,
    /// `backoff.maxRetries` consecutive failures.
    RetriesExhausted,
    /// Anything else.
    Unknown,
}

impl ErrorReason {
    /// The PascalCase name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Gone => "Gone",
            ErrorReason::ResourceVersionTooLarge => "ResourceVersionTooLarge",
            ErrorReason::Throttled => "Throttled",
            ErrorReason::ServerError => "ServerError",
            ErrorReason::Unauthorized => "Unauthorized",
            ErrorReason::Forbidden => "Forbidden",
            ErrorReason::NotFound => "NotFound",
            ErrorReason::ConnectionFailed => "ConnectionFailed",
            ErrorReason::ConnectionReset => "ConnectionReset",
            ErrorReason::RequestTimeout => "RequestTimeout",
            ErrorReason::IdleTimeout => "IdleTimeout",
            ErrorReason::EmptyWatch => "EmptyWatch",
            ErrorReason::DecodeError => "DecodeError",
            ErrorReason::EventTooLarge => "EventTooLarge",
            ErrorReason::TooManyObjects => "TooManyObjects",
            ErrorReason::RetriesExhausted => "RetriesExhausted",
            ErrorReason::Unknown => "Unknown",
        }
    }
}

/// The last failure of a watch.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetError {
    /// What kind of failure.
    pub reason: ErrorReason,
    /// Human-readable detail; never contains object contents.
    pub message: String,
    /// When it happened.
    pub time: Time,
}

/// The health of one watch (target × namespace).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// API version of the target.
    pub api_version: String,
    /// Kind of the target.
    pub kind: String,
    /// The namespace watched; `""` when cluster-wide.
    #[serde(default)]
    pub namespace: String,
    /// Where the watch is in its life cycle.
    pub state: TargetState,
    /// Objects in this watch's cache.
    #[serde(default)]
    pub objects: i64,
    /// The resourceVersion the watch resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Since when the current watch connection has been open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<Time>,
    /// When the last ADDED, MODIFIED or DELETED event arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<Time>,
    /// When the last bookmark arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bookmark_time: Option<Time>,
    /// Watch connections re-opened after the first.
    #[serde(default)]
    pub reconnects: i64,
    /// Full relists after the initial list.
    #[serde(default)]
    pub relists: i64,
    /// Failures since the last success.
    #[serde(default)]
    pub consecutive_failures: i64,
    /// When the next attempt is due, while in `Backoff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,
    /// The last failure, kept after recovery for diagnosis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<TargetError>,
}
