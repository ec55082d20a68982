//! The WatchPolicy API, `watchpool.dev/v1alpha1`.
//!
//! Types, defaults, validation and the CRD manifest, with no Kubernetes client: the operator,
//! the tests and the CRD generator all build on this crate without a cluster.

#![warn(missing_docs)]

mod config;
mod crd;
mod selectors;
mod types;
mod units;
mod validate;

pub use config::{
    BackoffConfig, LimitsConfig, NamespaceScope, PolicyConfig, TargetConfig, TimeoutsConfig,
};
pub use crd::{api_reference_markdown, crd, crd_schema, crd_yaml};
pub use types::{
    API_VERSION_PATTERN, Backoff, CpuStatus, DURATION_PATTERN, ErrorReason, KIND_PATTERN, Limits,
    MAX_BACKOFF_FACTOR, MAX_NAMESPACES, MAX_OBJECTS, MAX_RETRIES, MAX_SELECTOR_LEN, MAX_TARGETS,
    NAMESPACE_PATTERN, QUANTITY_PATTERN, TargetError, TargetState, TargetStatus, Timeouts,
    WatchPolicy, WatchPolicySpec, WatchPolicyStatus, WatchTarget,
};
pub use units::{ByteQuantity, CpuQuantity, GoDuration, UnitError};
pub use validate::{FieldError, ValidationContext, ValidationErrors};
