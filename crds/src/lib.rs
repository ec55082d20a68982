//! The WatchPolicy API, `watchpool.dev/v1alpha1`.
//!
//! Types, defaults, validation and the CRD manifest, with no Kubernetes client: the operator,
//! the tests and the CRD generator all build on this crate without a cluster.

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
    Backoff, CpuStatus, ErrorReason, Limits, TargetError, TargetState, TargetStatus, Timeouts,
    WatchPolicy, WatchPolicySpec, WatchPolicyStatus, WatchTarget,
};
pub use units::{ByteQuantity, CpuQuantity, GoDuration, UnitError};
pub use validate::{FieldError, ValidationContext, ValidationErrors};
