//! The `WatchPolicy` custom resource (`watchpool.dev/v1alpha1`): spec and status.
//!
//! The spec keeps durations and quantities as the strings the user wrote, so that any object
//! the API server stores can be decoded; `WatchPolicySpec::validate` turns them into a typed
//! [`crate::PolicyConfig`] once, with a field path for every problem.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::units::{DURATION_PATTERN, MAX_DURATION_LEN, MAX_QUANTITY_LEN, QUANTITY_PATTERN};

/// Most targets in one policy (bounds the cost of the uniqueness rule).
pub const MAX_TARGETS: usize = 32;
/// Most namespaces in one target.
pub const MAX_NAMESPACES: usize = 32;
/// Longest label or field selector, in bytes.
pub const MAX_SELECTOR_LEN: usize = 512;
/// Grammar of `targets[].apiVersion`: an optional DNS-1123 subdomain group and `/`, then a
/// DNS-1035 label version.
pub const API_VERSION_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z]([-a-z0-9]*[a-z0-9])?$";
/// Grammar of `targets[].kind`: an UpperCamelCase identifier.
pub const KIND_PATTERN: &str = r"^[A-Z][A-Za-z0-9]*$";
/// Grammar of an entry of `targets[].namespaces`: a DNS-1123 label, or `*`.
pub const NAMESPACE_PATTERN: &str = r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$";
/// Largest `backoff.factor`.
pub const MAX_BACKOFF_FACTOR: f64 = 10.0;
/// Largest `limits.maxObjects`.
pub const MAX_OBJECTS: u64 = 10_000_000;
/// Largest `backoff.maxRetries`.
pub const MAX_RETRIES: u32 = 1_000_000;

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
    doc = "A pool of resilient, CPU-bounded watches over the kinds listed in `spec.targets`, with the health of each watch reported in `status`.",
    printcolumn = r#"{"name":"Ready","type":"string","description":"Status of the Ready condition: every watch synced and watching.","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Watching","type":"integer","description":"Watches currently in state Watching.","jsonPath":".status.watching"}"#,
    printcolumn = r#"{"name":"Targets","type":"integer","description":"Watches the pool runs, one per target and namespace.","jsonPath":".status.targetCount"}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","description":"Objects cached across all targets.","jsonPath":".status.objects"}"#,
    printcolumn = r#"{"name":"Reconnects","type":"integer","description":"Watch reconnects since the pool started.","jsonPath":".status.reconnects"}"#,
    printcolumn = r#"{"name":"CPU","type":"string","description":"CPU used by the pool, averaged over a short window.","jsonPath":".status.cpu.used"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "The desired pool: what to watch (`targets`), the deadlines of the watches (`timeouts`), the retry policy (`backoff`) and the budget of the pool (`limits`). Only `targets` is required."
)]
pub struct WatchPolicySpec {
    /// Stop every watch of this policy while true; each target then reports state `Suspended`.
    /// Default `false`.
    #[serde(default)]
    pub suspend: bool,
    /// The kinds to watch: at least one, at most 32, no two identical.
    #[schemars(length(min = 1, max = MAX_TARGETS))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.all(t, self.exists_one(u, u == t))",
            "message": "must not contain two identical targets (same apiVersion, kind, namespaces, selectors and metadataOnly)"
        }
    ]))]
    pub targets: Vec<WatchTarget>,
    /// Deadlines of the watches. Every field has a default.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Retry policy after a failed list or watch, kept per target. Every field has a default.
    #[serde(default)]
    pub backoff: Backoff,
    /// Resource limits of the pool. Every field has a default.
    #[serde(default)]
    pub limits: Limits,
}

/// One kind to watch, in some namespaces or cluster-wide.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.namespaces) || self.namespaces.size() <= 1 || self.namespaces.all(n, n != '*')",
        "message": "'*' (the whole cluster) must be the only entry",
        "fieldPath": ".namespaces"
    }
]))]
pub struct WatchTarget {
    /// API version of the kind: `group/version`, or just the version for the core group
    /// (`v1`, `apps/v1`, `monitoring.example.com/v1beta2`).
    #[schemars(length(min = 1, max = 317))]
    #[schemars(regex(pattern = API_VERSION_PATTERN))]
    pub api_version: String,
    /// Kind, in UpperCamelCase (`Pod`, `Deployment`).
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    /// Namespaces to watch, one watch each, at most 32. Empty (the default): the policy's own
    /// namespace. `["*"]`: the whole cluster. Namespaces other than the policy's own, and `*`,
    /// are allowed only for policies in a namespace the operator trusts. A cluster-scoped kind
    /// is always watched cluster-wide.
    #[serde(default)]
    #[schemars(length(max = MAX_NAMESPACES))]
    #[schemars(inner(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN)))]
    pub namespaces: Vec<String>,
    /// Label selector, Kubernetes syntax (`app=web`, `tier in (web,api)`, `!canary`, comma for
    /// AND), at most 512 characters. Unset (the default): every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.trim() != ''",
            "message": "labelSelector must not be empty: leave it unset to watch every object"
        }
    ]))]
    pub label_selector: Option<String>,
    /// Field selector, Kubernetes syntax (`metadata.name=web`, `status.phase!=Running`, comma for
    /// AND), at most 512 characters. Unset (the default): every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SELECTOR_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.trim() != ''",
            "message": "fieldSelector must not be empty: leave it unset to watch every object"
        }
    ]))]
    pub field_selector: Option<String>,
    /// Watch only object metadata (PartialObjectMetadata): far less memory and CPU. Secrets are
    /// always watched metadata-only unless the operator allows secret data. Default `false`.
    #[serde(default)]
    pub metadata_only: bool,
}

/// Deadlines of the watches. Durations are Go-style strings: `800ms`, `90s`, `5m`, `1h30m`
/// (units `ns`, `us`, `ms`, `s`, `m`, `h`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Lifetime asked of the API server per watch request (`timeoutSeconds`), jittered down by
    /// up to 10 % so that watches do not expire together. Greater than zero. Default `5m`.
    #[serde(default = "default_watch")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "watch must be greater than 0s"}
    ]))]
    pub watch: String,
    /// A watch with no event and no bookmark for this long is dead: the connection is dropped and
    /// rebuilt. Bookmarks count as life. Greater than zero. Default `90s`.
    #[serde(default = "default_idle")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "idle must be greater than 0s"}
    ]))]
    pub idle: String,
    /// Deadline for each list page and for the response headers of each watch. Greater than
    /// zero. Default `30s`.
    #[serde(default = "default_request")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "request must be greater than 0s"}
    ]))]
    pub request: String,
    /// Period of a full relist that replaces the cache (guards against a rewound etcd). `0s`
    /// turns it off. Default `0s`.
    #[serde(default = "default_resync")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    pub resync: String,
}

/// Retry policy after a failed list or watch, kept per target (never shared). The delay before
/// attempt N+1 is `min(initial × factor^N, max)`, of which a fraction `jitter` is random.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "duration(self.initial) <= duration(self.max)",
        "message": "initial must not exceed max",
        "fieldPath": ".initial"
    }
]))]
pub struct Backoff {
    /// First delay after a failure, a Go-style duration greater than zero. Default `800ms`.
    #[serde(default = "default_initial")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "initial must be greater than 0s"}
    ]))]
    pub initial: String,
    /// Largest delay, a Go-style duration not less than `initial`. Default `30s`.
    #[serde(default = "default_max")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    pub max: String,
    /// Multiplier per consecutive failure, from 1 (constant delay) to 10. Default `2`.
    #[serde(default = "default_factor")]
    #[schemars(range(min = 1.0, max = MAX_BACKOFF_FACTOR))]
    pub factor: f64,
    /// Fraction of each delay that is randomised, from 0 (none) to 1 (anywhere between zero and
    /// the delay). Default `0.5`.
    #[serde(default = "default_jitter")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter: f64,
    /// Healthy watching time after which the backoff starts again from `initial`, a Go-style
    /// duration greater than zero. Default `2m`.
    #[serde(default = "default_reset_after")]
    #[schemars(length(max = MAX_DURATION_LEN), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "resetAfter must be greater than 0s"}
    ]))]
    pub reset_after: String,
    /// `0` retries for ever; `N` (at most 1000000) puts a target in state `Failed` after N
    /// consecutive failures, until the policy changes. Default `0`.
    #[serde(default)]
    #[schemars(range(max = MAX_RETRIES))]
    pub max_retries: u32,
}

/// Resource limits of the pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// CPU budget of the whole pool, a Kubernetes quantity (`100m` = a tenth of a core, `0.5`,
    /// `1`); measured, and enforced by delaying the pool's work. Greater than zero. Default
    /// `100m`.
    #[serde(default = "default_cpu")]
    #[schemars(length(max = MAX_QUANTITY_LEN), regex(pattern = QUANTITY_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "quantity(self).isGreaterThan(quantity('0'))", "message": "cpu must be greater than 0"}
    ]))]
    pub cpu: String,
    /// Most objects the pool caches across its targets, from 1 to 10000000; beyond it a target
    /// reports `Failed` with reason `TooManyObjects`. Default `100000`.
    #[serde(default = "default_max_objects")]
    #[schemars(range(min = 1, max = MAX_OBJECTS))]
    pub max_objects: u64,
    /// Largest watch event accepted, a Kubernetes quantity of bytes (`16Mi`, `1Gi`, `500k`); a
    /// larger event closes the connection and is reported (`EventTooLarge`). Greater than zero.
    /// Default `16Mi`.
    #[serde(default = "default_max_event_size")]
    #[schemars(length(max = MAX_QUANTITY_LEN), regex(pattern = QUANTITY_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "quantity(self).isGreaterThan(quantity('0'))", "message": "maxEventSize must be greater than 0"}
    ]))]
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
    /// `Ready` (every watch synced and watching), `Degraded` (some watch is not; the reason
    /// names its state) and `CPUThrottled` (the pool is held to its CPU budget). Standard
    /// `metav1.Condition`s, one per type (kstatus-compatible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
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
    /// What kind of failure: `Gone` (410, history compacted; relisted),
    /// `ResourceVersionTooLarge` (relisted), `Throttled` (429), `ServerError` (5xx),
    /// `Unauthorized` (401), `Forbidden` (403), `NotFound` (404: no such kind), `ConnectionFailed`,
    /// `ConnectionReset`, `RequestTimeout` (past `timeouts.request`), `IdleTimeout` (silent past
    /// `timeouts.idle`), `EmptyWatch` (a watch ended at once with no event), `DecodeError`,
    /// `EventTooLarge` (past `limits.maxEventSize`), `TooManyObjects` (past `limits.maxObjects`),
    /// `RetriesExhausted` (`backoff.maxRetries` failures in a row), `Unknown`.
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
    /// Where the watch is in its life cycle: `Pending` (not started, or resolving the kind),
    /// `Listing`, `Watching` (synced and watching), `Backoff` (waiting until `nextRetryTime`
    /// after a failure), `Stalled` (silent for longer than `timeouts.idle`; being rebuilt),
    /// `Unauthorized` (401), `Forbidden` (403, or not allowed to this policy), `NotFound` (no
    /// such kind), `Failed` (gave up: `backoff.maxRetries` or `limits.maxObjects`), `Suspended`.
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
