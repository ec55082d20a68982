//! Both validation layers on one table: every case runs through `WatchPolicySpec::validate`
//! (the operator) and through the CRD's schema bounds and CEL rules (the API server at
//! admission), and each layer must accept or reject it as the table says, naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

mod common;

use common::{admission_errors, policy, rust_errors, yaml};
use watchpool_api::ValidationContext;

/// What a layer must do with a case.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Accepts it.
    Accept,
    /// Rejects it with an error whose path is (or is under) this field.
    Reject(&'static str),
}
use Expect::{Accept, Reject};

struct Case {
    name: &'static str,
    /// The spec, YAML.
    spec: &'static str,
    /// The policy's namespace is trusted.
    trusted: bool,
    /// The operator's `validate()`.
    rust: Expect,
    /// The API server: schema bounds and CEL rules. `Accept` on a case the Rust layer rejects
    /// marks a rule the schema cannot express (trust, selector grammar, normalised duplicates).
    admission: Expect,
}

const NS: &str = "team-a";

fn cases() -> Vec<Case> {
    let c = |name, spec, trusted, rust, admission| Case {
        name,
        spec,
        trusted,
        rust,
        admission,
    };
    vec![
        // ---- good ----
        c(
            "minimal_policy_is_valid",
            "targets: [{apiVersion: v1, kind: Pod}]",
            false,
            Accept,
            Accept,
        ),
        c(
            "full_design_policy_is_valid_in_a_trusted_namespace",
            r#"
targets:
  - {apiVersion: v1, kind: Pod, namespaces: [shop, payments], labelSelector: "tier in (web,api)"}
  - {apiVersion: apps/v1, kind: Deployment, metadataOnly: true}
timeouts: {watch: 5m, idle: 90s, request: 30s, resync: 0s}
backoff: {initial: 800ms, max: 30s, factor: 2, jitter: 0.5, resetAfter: 2m, maxRetries: 0}
limits: {cpu: 100m, maxObjects: 100000, maxEventSize: 16Mi}
"#,
            true,
            Accept,
            Accept,
        ),
        c(
            "crd_group_api_version_is_valid",
            "targets: [{apiVersion: monitoring.example.com/v1beta2, kind: ServiceMonitor}]",
            false,
            Accept,
            Accept,
        ),
        c(
            "own_namespace_is_allowed_untrusted",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: [team-a]}]",
            false,
            Accept,
            Accept,
        ),
        c(
            "whole_cluster_is_allowed_trusted",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: ['*']}]",
            true,
            Accept,
            Accept,
        ),
        c(
            "every_selector_form_is_valid",
            r#"targets: [{apiVersion: v1, kind: Pod, labelSelector: "app=web,env==prod,tier!=db,team in (a,b),zone notin (x),canary,!legacy", fieldSelector: "status.phase!=Failed,spec.nodeName==n1,metadata.name=web"}]"#,
            false,
            Accept,
            Accept,
        ),
        c(
            "compound_and_fractional_durations_are_valid",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {watch: 1h30m, idle: 1.5s, request: 500ms, resync: 10m}",
            false,
            Accept,
            Accept,
        ),
        c(
            "equal_initial_and_max_with_edge_factor_and_jitter_are_valid",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {initial: 5s, max: 5s, factor: 1, jitter: 1}",
            false,
            Accept,
            Accept,
        ),
        c(
            "fractional_cpu_and_exponent_size_are_valid",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {cpu: '0.5', maxObjects: 1, maxEventSize: '1e6'}",
            false,
            Accept,
            Accept,
        ),
        c(
            "secrets_may_be_watched",
            "targets: [{apiVersion: v1, kind: Secret}]",
            false,
            Accept,
            Accept,
        ),
        // ---- targets ----
        c(
            "empty_target_list_is_rejected",
            "targets: []",
            false,
            Reject("spec.targets"),
            Reject("spec.targets"),
        ),
        c(
            "uppercase_group_is_rejected",
            "targets: [{apiVersion: Apps/v1, kind: Deployment}]",
            false,
            Reject("spec.targets[0].apiVersion"),
            Reject("spec.targets[0].apiVersion"),
        ),
        c(
            "group_without_version_is_rejected",
            "targets: [{apiVersion: apps/, kind: Deployment}]",
            false,
            Reject("spec.targets[0].apiVersion"),
            Reject("spec.targets[0].apiVersion"),
        ),
        c(
            "version_without_group_is_rejected",
            "targets: [{apiVersion: /v1, kind: Pod}]",
            false,
            Reject("spec.targets[0].apiVersion"),
            Reject("spec.targets[0].apiVersion"),
        ),
        c(
            "api_version_with_two_slashes_is_rejected",
            "targets: [{apiVersion: apps/v1/x, kind: Deployment}]",
            false,
            Reject("spec.targets[0].apiVersion"),
            Reject("spec.targets[0].apiVersion"),
        ),
        c(
            "lowercase_kind_is_rejected",
            "targets: [{apiVersion: v1, kind: pod}]",
            false,
            Reject("spec.targets[0].kind"),
            Reject("spec.targets[0].kind"),
        ),
        c(
            "kind_with_a_dash_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod-x}]",
            false,
            Reject("spec.targets[0].kind"),
            Reject("spec.targets[0].kind"),
        ),
        c(
            "star_with_other_namespaces_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: ['*', shop]}]",
            true,
            Reject("spec.targets[0].namespaces"),
            Reject("spec.targets[0].namespaces"),
        ),
        c(
            "uppercase_namespace_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: [Shop]}]",
            true,
            Reject("spec.targets[0].namespaces[0]"),
            Reject("spec.targets[0].namespaces[0]"),
        ),
        // Trust depends on the operator's configuration: only the operator can check it.
        c(
            "other_namespace_is_rejected_untrusted",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: [team-b]}]",
            false,
            Reject("spec.targets[0].namespaces[0]"),
            Accept,
        ),
        c(
            "whole_cluster_is_rejected_untrusted",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: ['*']}]",
            false,
            Reject("spec.targets[0].namespaces"),
            Accept,
        ),
        c(
            "empty_label_selector_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, labelSelector: ''}]",
            false,
            Reject("spec.targets[0].labelSelector"),
            Reject("spec.targets[0].labelSelector"),
        ),
        c(
            "blank_label_selector_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, labelSelector: '   '}]",
            false,
            Reject("spec.targets[0].labelSelector"),
            Reject("spec.targets[0].labelSelector"),
        ),
        // Selector grammar is beyond a pattern: only the operator parses it.
        c(
            "label_selector_without_parentheses_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, labelSelector: 'tier in web'}]",
            false,
            Reject("spec.targets[0].labelSelector"),
            Accept,
        ),
        c(
            "empty_field_selector_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, fieldSelector: ''}]",
            false,
            Reject("spec.targets[0].fieldSelector"),
            Reject("spec.targets[0].fieldSelector"),
        ),
        c(
            "field_selector_without_operator_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod, fieldSelector: metadata.name}]",
            false,
            Reject("spec.targets[0].fieldSelector"),
            Accept,
        ),
        c(
            "identical_targets_are_rejected",
            "targets: [{apiVersion: v1, kind: Pod}, {apiVersion: apps/v1, kind: Deployment}, {apiVersion: v1, kind: Pod}]",
            false,
            Reject("spec.targets[2]"),
            Reject("spec.targets"),
        ),
        // CEL compares targets as written; the operator compares them after normalising the
        // namespace list, so only it sees these two as the same watches.
        c(
            "targets_identical_after_sorting_namespaces_are_rejected",
            "targets: [{apiVersion: v1, kind: Pod, namespaces: [a, b]}, {apiVersion: v1, kind: Pod, namespaces: [b, a]}]",
            true,
            Reject("spec.targets[1]"),
            Accept,
        ),
        // ---- timeouts ----
        c(
            "zero_idle_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {idle: 0s}",
            false,
            Reject("spec.timeouts.idle"),
            Reject("spec.timeouts.idle"),
        ),
        c(
            "bare_zero_watch_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {watch: '0'}",
            false,
            Reject("spec.timeouts.watch"),
            Reject("spec.timeouts.watch"),
        ),
        c(
            "duration_without_unit_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {request: '5'}",
            false,
            Reject("spec.timeouts.request"),
            Reject("spec.timeouts.request"),
        ),
        c(
            "negative_duration_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {idle: -5s}",
            false,
            Reject("spec.timeouts.idle"),
            Reject("spec.timeouts.idle"),
        ),
        c(
            "unknown_duration_unit_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {watch: 1d}",
            false,
            Reject("spec.timeouts.watch"),
            Reject("spec.timeouts.watch"),
        ),
        c(
            "negative_resync_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {resync: -1m}",
            false,
            Reject("spec.timeouts.resync"),
            Reject("spec.timeouts.resync"),
        ),
        c(
            "duration_longer_than_32_characters_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\ntimeouts: {watch: 1h1m1s1h1m1s1h1m1s1h1m1s1h1m1s1h1m}",
            false,
            Reject("spec.timeouts.watch"),
            Reject("spec.timeouts.watch"),
        ),
        // ---- backoff ----
        c(
            "initial_above_max_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {initial: 1m, max: 30s}",
            false,
            Reject("spec.backoff.initial"),
            Reject("spec.backoff.initial"),
        ),
        c(
            "zero_initial_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {initial: 0s}",
            false,
            Reject("spec.backoff.initial"),
            Reject("spec.backoff.initial"),
        ),
        c(
            "factor_below_one_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {factor: 0.5}",
            false,
            Reject("spec.backoff.factor"),
            Reject("spec.backoff.factor"),
        ),
        c(
            "factor_above_ten_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {factor: 11}",
            false,
            Reject("spec.backoff.factor"),
            Reject("spec.backoff.factor"),
        ),
        c(
            "jitter_above_one_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {jitter: 1.5}",
            false,
            Reject("spec.backoff.jitter"),
            Reject("spec.backoff.jitter"),
        ),
        c(
            "negative_jitter_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {jitter: -0.1}",
            false,
            Reject("spec.backoff.jitter"),
            Reject("spec.backoff.jitter"),
        ),
        c(
            "zero_reset_after_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {resetAfter: 0s}",
            false,
            Reject("spec.backoff.resetAfter"),
            Reject("spec.backoff.resetAfter"),
        ),
        c(
            "huge_max_retries_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nbackoff: {maxRetries: 2000000}",
            false,
            Reject("spec.backoff.maxRetries"),
            Reject("spec.backoff.maxRetries"),
        ),
        // ---- limits ----
        c(
            "zero_cpu_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {cpu: '0'}",
            false,
            Reject("spec.limits.cpu"),
            Reject("spec.limits.cpu"),
        ),
        c(
            "zero_millicores_cpu_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {cpu: 0m}",
            false,
            Reject("spec.limits.cpu"),
            Reject("spec.limits.cpu"),
        ),
        c(
            "negative_cpu_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {cpu: -100m}",
            false,
            Reject("spec.limits.cpu"),
            Reject("spec.limits.cpu"),
        ),
        c(
            "unparsable_cpu_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {cpu: lots}",
            false,
            Reject("spec.limits.cpu"),
            Reject("spec.limits.cpu"),
        ),
        c(
            "zero_max_objects_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {maxObjects: 0}",
            false,
            Reject("spec.limits.maxObjects"),
            Reject("spec.limits.maxObjects"),
        ),
        c(
            "huge_max_objects_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {maxObjects: 20000000}",
            false,
            Reject("spec.limits.maxObjects"),
            Reject("spec.limits.maxObjects"),
        ),
        c(
            "zero_event_size_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {maxEventSize: '0'}",
            false,
            Reject("spec.limits.maxEventSize"),
            Reject("spec.limits.maxEventSize"),
        ),
        c(
            "event_size_in_megabytes_notation_is_rejected",
            "targets: [{apiVersion: v1, kind: Pod}]\nlimits: {maxEventSize: 16MB}",
            false,
            Reject("spec.limits.maxEventSize"),
            Reject("spec.limits.maxEventSize"),
        ),
    ]
}

fn names_field(errors: &[String], field: &str) -> bool {
    errors.iter().any(|e| {
        e.starts_with(&format!("{field}:"))
            || e.starts_with(&format!("{field}."))
            || e.starts_with(&format!("{field}["))
    })
}

#[test]
fn both_layers_agree_with_the_table() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table must hold at least 30 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let spec = yaml(case.spec);
        let ctx = ValidationContext::new(NS).trusted(case.trusted);

        let rust = rust_errors(&spec, &ctx);
        match (case.rust, &rust) {
            (Accept, Ok(())) => {}
            (Accept, Err(e)) => failures.push(format!("{}: rust rejected: {e}", case.name)),
            (Reject(field), Ok(())) => {
                failures.push(format!("{}: rust accepted, wanted {field}", case.name))
            }
            (Reject(field), Err(e)) => {
                let text = e.to_string();
                if !e.has_path(field) || !text.contains(field) {
                    failures.push(format!(
                        "{}: rust error does not name {field}: {text}",
                        case.name
                    ));
                }
            }
        }

        let admission = admission_errors(&policy(NS, spec));
        match case.admission {
            Accept if admission.is_empty() => {}
            Accept => failures.push(format!("{}: admission rejected: {admission:?}", case.name)),
            Reject(field) => {
                if !names_field(&admission, field) {
                    failures.push(format!(
                        "{}: admission does not name {field}: {admission:?}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn validate_reports_every_problem_at_once() {
    let spec = yaml(
        "targets: [{apiVersion: Apps/v1, kind: pod, labelSelector: ''}]\n\
         timeouts: {idle: 0s}\nbackoff: {initial: 1m, max: 30s, jitter: 2}\nlimits: {cpu: '0'}",
    );
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    let paths: Vec<&str> = err.errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.targets[0].apiVersion",
            "spec.targets[0].kind",
            "spec.targets[0].labelSelector",
            "spec.timeouts.idle",
            "spec.backoff.initial",
            "spec.backoff.jitter",
            "spec.limits.cpu",
        ]
    );
}

#[test]
fn errors_display_as_path_colon_message_joined_by_semicolons() {
    let spec = yaml("targets: [{apiVersion: v1, kind: pod}]\nbackoff: {initial: 1m, max: 30s}");
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("spec.targets[0].kind: \"pod\" must be a kind in UpperCamelCase"),
        "{text}"
    );
    assert!(
        text.ends_with("; spec.backoff.initial: must not exceed spec.backoff.max (30s)"),
        "{text}"
    );
}

#[test]
fn duplicate_targets_name_both_indexes() {
    let spec = yaml("targets: [{apiVersion: v1, kind: Pod}, {apiVersion: v1, kind: Pod}]");
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    assert_eq!(err.errors().len(), 1);
    assert_eq!(err.errors()[0].path, "spec.targets[1]");
    assert!(err.errors()[0].message.contains("spec.targets[0]"), "{err}");
}

#[test]
fn untrusted_namespace_messages_name_the_namespace_and_the_policy_namespace() {
    let spec = yaml(
        "targets: [{apiVersion: v1, kind: Pod, namespaces: [team-a, team-b]}, {apiVersion: v1, kind: Service, namespaces: ['*']}]",
    );
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.errors().len(), 2, "{text}");
    assert!(
        text.contains("spec.targets[0].namespaces[1]: namespace \"team-b\" is not allowed"),
        "{text}"
    );
    assert!(text.contains("\"team-a\" is not trusted"), "{text}");
    assert!(
        text.contains("spec.targets[1].namespaces: '*' (the whole cluster) is not allowed"),
        "{text}"
    );
}

#[test]
fn more_than_the_maximum_of_targets_is_rejected_by_both_layers() {
    let kinds: Vec<String> = (0..33)
        .map(|i| format!("{{apiVersion: v1, kind: Kind{i}}}"))
        .collect();
    let spec = yaml(&format!("targets: [{}]", kinds.join(", ")));
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    assert!(err.has_path("spec.targets"), "{err}");
    let admission = admission_errors(&policy(NS, spec));
    assert!(names_field(&admission, "spec.targets"), "{admission:?}");
}

#[test]
fn a_long_value_is_cut_in_messages() {
    let long = "x".repeat(5000);
    let spec = serde_json::json!({"targets": [{"apiVersion": "v1", "kind": long}]});
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    assert!(err.to_string().len() < 300, "{}", err.to_string().len());
}

#[test]
fn selector_longer_than_512_characters_is_rejected_by_both_layers() {
    let long = format!("app in ({})", vec!["a"; 300].join(","));
    assert!(long.len() > 512);
    let spec = serde_json::json!({"targets": [{"apiVersion": "v1", "kind": "Pod", "labelSelector": long}]});
    let err = rust_errors(&spec, &ValidationContext::new(NS)).unwrap_err();
    assert!(err.has_path("spec.targets[0].labelSelector"), "{err}");
    let admission = admission_errors(&policy(NS, spec));
    assert!(
        names_field(&admission, "spec.targets[0].labelSelector"),
        "{admission:?}"
    );
}
