//! The effective, typed configuration of a policy: what `WatchPolicySpec::validate` produces
//! and what the engine consumes. Every duration, quantity and selector here has been parsed
//! and checked once; nothing downstream re-parses strings from the spec.

use std::time::Duration;

/// A validated policy: the pool's whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// `spec.suspend`: no watch runs while true.
    pub suspend: bool,
    /// One entry per `spec.targets[]`, in order.
    pub targets: Vec<TargetConfig>,
    /// `spec.timeouts`, parsed.
    pub timeouts: TimeoutsConfig,
    /// `spec.backoff`, parsed.
    pub backoff: BackoffConfig,
    /// `spec.limits`, parsed.
    pub limits: LimitsConfig,
}

/// Where a target watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamespaceScope {
    /// The whole cluster (`namespaces: ["*"]`), or a cluster-scoped kind.
    All,
    /// These namespaces, one watch each, sorted and without duplicates.
    Namespaces(Vec<String>),
}

/// One validated `spec.targets[]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetConfig {
    /// As written: `v1`, `apps/v1`, `watchpool.dev/v1alpha1`.
    pub api_version: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The version (`v1`).
    pub version: String,
    /// The kind (`Pod`).
    pub kind: String,
    /// Where to watch, after the trust rules were applied.
    pub scope: NamespaceScope,
    /// A syntactically valid label selector, or `None` for everything.
    pub label_selector: Option<String>,
    /// A syntactically valid field selector, or `None` for everything.
    pub field_selector: Option<String>,
    /// Watch `PartialObjectMetadata` instead of whole objects. Forced to true for Secrets
    /// unless the operator allows secret data.
    pub metadata_only: bool,
}

/// `spec.timeouts`, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// Lifetime asked of the server per watch request (before jitter).
    pub watch: Duration,
    /// A stream silent (no event, no bookmark) for this long is dead.
    pub idle: Duration,
    /// Deadline for each list page and for a watch's response headers.
    pub request: Duration,
    /// Periodic full relist; `None` when `resync` is `0s`.
    pub resync: Option<Duration>,
}

/// `spec.backoff`, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// First delay after a failure (`> 0`).
    pub initial: Duration,
    /// Largest delay (`>= initial`).
    pub max: Duration,
    /// Multiplier per consecutive failure, `>= 1`.
    pub factor: f64,
    /// Fraction in `[0, 1]` of each delay that is randomised.
    pub jitter: f64,
    /// Healthy time after which the backoff starts again from `initial`.
    pub reset_after: Duration,
    /// `0` = retry for ever; `N` = the target goes `Failed` after N consecutive failures.
    pub max_retries: u32,
}

/// `spec.limits`, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// CPU budget of the pool in millicores (`> 0`).
    pub cpu_millis: u64,
    /// Cap on the objects cached by the whole pool.
    pub max_objects: u64,
    /// Largest accepted watch event line, in bytes.
    pub max_event_size: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            watch: Duration::from_secs(300),
            idle: Duration::from_secs(90),
            request: Duration::from_secs(30),
            resync: None,
        }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(120),
            max_retries: 0,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            cpu_millis: 100,
            max_objects: 100_000,
            max_event_size: 16 * 1024 * 1024,
        }
    }
}
