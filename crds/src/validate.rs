//! `WatchPolicySpec::validate`: every rule of the CRD schema and its CEL rules, plus those only
//! the operator can check (trust of the policy's namespace), in one pass that reports every
//! problem with its field path and turns the spec into a typed [`PolicyConfig`].

use std::fmt;
use std::str::FromStr;

use crate::config::{
    BackoffConfig, LimitsConfig, NamespaceScope, PolicyConfig, TargetConfig, TimeoutsConfig,
};
use crate::selectors::{
    check_field_selector, check_label_selector, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain,
};
use crate::types::{
    Backoff, Limits, MAX_BACKOFF_FACTOR, MAX_NAMESPACES, MAX_OBJECTS, MAX_RETRIES,
    MAX_SELECTOR_LEN, MAX_TARGETS, Timeouts, WatchPolicySpec, WatchTarget,
};
use crate::units::{ByteQuantity, CpuQuantity, GoDuration, UnitError};

/// What validation needs to know beyond the spec: where the policy lives and what the operator
/// allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// The policy's own namespace (`metadata.namespace`).
    pub namespace: String,
    /// The policy lives in a namespace the operator trusts: it may watch other namespaces and
    /// the whole cluster.
    pub trusted: bool,
    /// The operator may read Secret contents; otherwise Secrets are watched metadata-only.
    pub allow_secret_data: bool,
}

impl ValidationContext {
    /// A context for a policy in `namespace`, untrusted, without secret data.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            trusted: false,
            allow_secret_data: false,
        }
    }

    /// The same context, trusted or not.
    pub fn trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// The same context, with or without secret data.
    pub fn allow_secret_data(mut self, allow: bool) -> Self {
        self.allow_secret_data = allow;
        self
    }
}

/// One problem of a spec: the field (`spec.backoff.initial`, `spec.targets[1].labelSelector`)
/// and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field from the object's root, e.g. `spec.targets[0].kind`.
    pub path: String,
    /// What is wrong, lowercase, e.g. `must not exceed spec.backoff.max (30s)`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a spec, in field order. Never empty when returned by `validate`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The problems.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// True when some problem is at `path` or under it (`spec.backoff` matches
    /// `spec.backoff.initial`).
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| {
            e.path == path
                || e.path
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for ValidationErrors {
    /// `spec.backoff.initial: must not exceed spec.backoff.max (30s); spec.targets[0].kind: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A value as shown in a message: quoted, and cut when long (it comes from the user).
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

impl WatchPolicySpec {
    /// Checks the whole spec and returns the typed configuration, or every problem found, each
    /// with its field path. Never panics, whatever the spec holds.
    pub fn validate(&self, ctx: &ValidationContext) -> Result<PolicyConfig, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let targets = validate_targets(&self.targets, ctx, &mut errs);
        let timeouts = validate_timeouts(&self.timeouts, &mut errs);
        let backoff = validate_backoff(&self.backoff, &mut errs);
        let limits = validate_limits(&self.limits, &mut errs);
        match (targets, timeouts, backoff, limits) {
            (Some(targets), Some(timeouts), Some(backoff), Some(limits)) if errs.0.is_empty() => {
                Ok(PolicyConfig {
                    suspend: self.suspend,
                    targets,
                    timeouts,
                    backoff,
                    limits,
                })
            }
            _ => Err(errs),
        }
    }
}

fn validate_targets(
    targets: &[WatchTarget],
    ctx: &ValidationContext,
    errs: &mut ValidationErrors,
) -> Option<Vec<TargetConfig>> {
    if targets.is_empty() {
        errs.push("spec.targets", "must name at least one target");
        return None;
    }
    if targets.len() > MAX_TARGETS {
        errs.push(
            "spec.targets",
            format!(
                "must not have more than {MAX_TARGETS} targets (has {})",
                targets.len()
            ),
        );
    }
    let before = errs.0.len();
    let mut configs = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        if let Some(config) = validate_target(i, target, ctx, errs) {
            configs.push((i, config));
        }
    }
    for (a, (i, first)) in configs.iter().enumerate() {
        for (j, second) in &configs[a + 1..] {
            if first == second {
                errs.push(
                    format!("spec.targets[{j}]"),
                    format!(
                        "duplicates spec.targets[{i}]: same apiVersion, kind, namespaces, selectors and metadataOnly"
                    ),
                );
            }
        }
    }
    (errs.0.len() == before).then(|| configs.into_iter().map(|(_, c)| c).collect())
}

fn validate_target(
    i: usize,
    t: &WatchTarget,
    ctx: &ValidationContext,
    errs: &mut ValidationErrors,
) -> Option<TargetConfig> {
    let at = |field: &str| format!("spec.targets[{i}].{field}");
    let before = errs.0.len();

    let (group, version) = match t.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", t.api_version.as_str()),
    };
    let version_ok = is_dns1035_label(version);
    let group_ok = t.api_version.contains('/') != group.is_empty()
        && (group.is_empty() || is_dns1123_subdomain(group));
    if t.api_version.is_empty() {
        errs.push(at("apiVersion"), "must not be empty");
    } else if !version_ok || !group_ok {
        errs.push(
            at("apiVersion"),
            format!(
                "{} must be a version (v1) or group/version (apps/v1), lowercase",
                shown(&t.api_version)
            ),
        );
    }

    let kind_ok = t.kind.len() <= 63
        && t.kind
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_uppercase)
        && t.kind.bytes().all(|c| c.is_ascii_alphanumeric());
    if !kind_ok {
        errs.push(
            at("kind"),
            format!(
                "{} must be a kind in UpperCamelCase such as Pod or Deployment (letters and digits, at most 63)",
                shown(&t.kind)
            ),
        );
    }

    let scope = validate_namespaces(i, &t.namespaces, ctx, errs);

    let label_selector = t.label_selector.as_deref();
    if let Some(sel) = label_selector {
        check_selector(
            &at("labelSelector"),
            "labelSelector",
            sel,
            check_label_selector,
            errs,
        );
    }
    let field_selector = t.field_selector.as_deref();
    if let Some(sel) = field_selector {
        check_selector(
            &at("fieldSelector"),
            "fieldSelector",
            sel,
            check_field_selector,
            errs,
        );
    }

    if errs.0.len() != before {
        return None;
    }
    let is_secret = group.is_empty() && version == "v1" && t.kind == "Secret";
    Some(TargetConfig {
        api_version: t.api_version.clone(),
        group: group.to_string(),
        version: version.to_string(),
        kind: t.kind.clone(),
        scope: scope?,
        label_selector: label_selector.map(|s| s.trim().to_string()),
        field_selector: field_selector.map(|s| s.trim().to_string()),
        metadata_only: t.metadata_only || (is_secret && !ctx.allow_secret_data),
    })
}

fn check_selector(
    path: &str,
    name: &str,
    sel: &str,
    check: fn(&str) -> Result<(), String>,
    errs: &mut ValidationErrors,
) {
    if sel.trim().is_empty() {
        errs.push(
            path,
            format!("{name} must not be empty: leave it unset to watch every object"),
        );
    } else if sel.chars().count() > MAX_SELECTOR_LEN {
        errs.push(
            path,
            format!(
                "must be at most {MAX_SELECTOR_LEN} characters (has {})",
                sel.chars().count()
            ),
        );
    } else if let Err(reason) = check(sel) {
        errs.push(path, format!("invalid {name}: {reason}"));
    }
}

fn validate_namespaces(
    i: usize,
    namespaces: &[String],
    ctx: &ValidationContext,
    errs: &mut ValidationErrors,
) -> Option<NamespaceScope> {
    let path = format!("spec.targets[{i}].namespaces");
    let before = errs.0.len();
    if namespaces.len() > MAX_NAMESPACES {
        errs.push(
            &path,
            format!(
                "must not list more than {MAX_NAMESPACES} namespaces (has {})",
                namespaces.len()
            ),
        );
    }
    let all = namespaces.iter().any(|n| n == "*");
    if all && namespaces.len() > 1 {
        errs.push(
            &path,
            "'*' (the whole cluster) must be the only entry".to_string(),
        );
    }
    if all && !ctx.trusted {
        errs.push(
            &path,
            format!(
                "'*' (the whole cluster) is not allowed: the policy's namespace {} is not trusted by the operator",
                shown(&ctx.namespace)
            ),
        );
    }
    for (j, ns) in namespaces.iter().enumerate() {
        if ns == "*" {
            continue;
        }
        if !is_dns1123_label(ns) {
            errs.push(
                format!("{path}[{j}]"),
                format!(
                    "{} must be a namespace name (lowercase letters, digits and '-', at most 63) or '*'",
                    shown(ns)
                ),
            );
        } else if *ns != ctx.namespace && !ctx.trusted {
            errs.push(
                format!("{path}[{j}]"),
                format!(
                    "namespace {} is not allowed: the policy's namespace {} is not trusted by the operator, so the policy may watch only its own namespace",
                    shown(ns),
                    shown(&ctx.namespace)
                ),
            );
        }
    }
    if errs.0.len() != before {
        return None;
    }
    if all {
        return Some(NamespaceScope::All);
    }
    let mut list: Vec<String> = if namespaces.is_empty() {
        vec![ctx.namespace.clone()]
    } else {
        namespaces.to_vec()
    };
    list.sort();
    list.dedup();
    Some(NamespaceScope::Namespaces(list))
}

/// Parses `value` at `path`, recording the error.
fn parse_at<T: FromStr<Err = UnitError>>(
    path: &str,
    value: &str,
    kind: &str,
    errs: &mut ValidationErrors,
) -> Option<T> {
    match value.parse::<T>() {
        Ok(v) => Some(v),
        Err(e @ (UnitError::Malformed(_) | UnitError::Negative | UnitError::TooLarge)) => {
            errs.push(path, format!("invalid {kind} {}: {e}", shown(value)));
            None
        }
        Err(e) => {
            errs.push(path, e.to_string());
            None
        }
    }
}

/// A duration that must be greater than zero.
fn positive_duration(path: &str, value: &str, errs: &mut ValidationErrors) -> Option<GoDuration> {
    let d = parse_at::<GoDuration>(path, value, "duration", errs)?;
    if d.is_zero() {
        errs.push(path, "must be greater than 0s");
        return None;
    }
    Some(d)
}

fn validate_timeouts(t: &Timeouts, errs: &mut ValidationErrors) -> Option<TimeoutsConfig> {
    let watch = positive_duration("spec.timeouts.watch", &t.watch, errs);
    let idle = positive_duration("spec.timeouts.idle", &t.idle, errs);
    let request = positive_duration("spec.timeouts.request", &t.request, errs);
    let resync = parse_at::<GoDuration>("spec.timeouts.resync", &t.resync, "duration", errs);
    let resync = resync?;
    Some(TimeoutsConfig {
        watch: watch?.get(),
        idle: idle?.get(),
        request: request?.get(),
        resync: (!resync.is_zero()).then(|| resync.get()),
    })
}

fn validate_backoff(b: &Backoff, errs: &mut ValidationErrors) -> Option<BackoffConfig> {
    let initial = positive_duration("spec.backoff.initial", &b.initial, errs);
    let max = positive_duration("spec.backoff.max", &b.max, errs);
    if let (Some(initial), Some(max)) = (initial, max)
        && initial > max
    {
        errs.push(
            "spec.backoff.initial",
            format!("must not exceed spec.backoff.max ({})", b.max.trim()),
        );
    }
    let factor_ok = b.factor.is_finite() && (1.0..=MAX_BACKOFF_FACTOR).contains(&b.factor);
    if !factor_ok {
        errs.push(
            "spec.backoff.factor",
            format!(
                "must be between 1 and {MAX_BACKOFF_FACTOR} (is {})",
                b.factor
            ),
        );
    }
    let jitter_ok = b.jitter.is_finite() && (0.0..=1.0).contains(&b.jitter);
    if !jitter_ok {
        errs.push(
            "spec.backoff.jitter",
            format!("must be between 0 and 1 (is {})", b.jitter),
        );
    }
    let reset_after = positive_duration("spec.backoff.resetAfter", &b.reset_after, errs);
    if b.max_retries > MAX_RETRIES {
        errs.push(
            "spec.backoff.maxRetries",
            format!("must be at most {MAX_RETRIES} (is {})", b.max_retries),
        );
    }
    let (initial, max, reset_after) = (initial?, max?, reset_after?);
    (initial <= max && factor_ok && jitter_ok && b.max_retries <= MAX_RETRIES).then(|| {
        BackoffConfig {
            initial: initial.get(),
            max: max.get(),
            factor: b.factor,
            jitter: b.jitter,
            reset_after: reset_after.get(),
            max_retries: b.max_retries,
        }
    })
}

fn validate_limits(l: &Limits, errs: &mut ValidationErrors) -> Option<LimitsConfig> {
    let cpu = parse_at::<CpuQuantity>("spec.limits.cpu", &l.cpu, "quantity", errs);
    let objects_ok = (1..=MAX_OBJECTS).contains(&l.max_objects);
    if !objects_ok {
        errs.push(
            "spec.limits.maxObjects",
            format!("must be between 1 and {MAX_OBJECTS} (is {})", l.max_objects),
        );
    }
    let event_size = parse_at::<ByteQuantity>(
        "spec.limits.maxEventSize",
        &l.max_event_size,
        "quantity",
        errs,
    );
    if event_size.is_some_and(|s| s.bytes() == 0) {
        errs.push("spec.limits.maxEventSize", "must be greater than 0");
    }
    let (cpu, event_size) = (cpu?, event_size?);
    (objects_ok && event_size.bytes() > 0).then(|| LimitsConfig {
        cpu_millis: cpu.millis(),
        max_objects: l.max_objects,
        max_event_size: event_size.bytes(),
    })
}
