//! A spec comes from the network: whatever it holds, parsing and validation return a value or
//! errors, never a panic, and accepted values round-trip through their typed form.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with its location

use proptest::prelude::*;
use watchpool_api::{
    Backoff, ByteQuantity, CpuQuantity, GoDuration, Limits, Timeouts, ValidationContext,
    WatchPolicySpec, WatchTarget,
};

/// Strings near the grammars (digits, units, suffixes, signs, separators) and plain noise.
fn unit_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.]{0,25}(ns|us|ms|s|m|h|Ki|Mi|Ei|e|E|k|M|n|u|)[0-9+-]{0,4}",
        "([0-9]{1,14}(\\.[0-9]{0,12})?(h|m|s|ms)){1,6}",
        "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,5})?",
        ".{0,40}",
    ]
}

fn selector_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z./!=(), -]{0,60}",
        "[a-z]{1,5}( (in|notin) \\(([a-z]{0,3},?){0,4}\\)?)?(,!?[a-z]{1,4}([=!]=?[a-z]{0,3})?){0,3}",
        "([a-z.]{1,12}(=|==|!=)[a-z\\\\,=]{0,8},?){1,4}",
        ".{0,60}",
    ]
}

fn target() -> impl Strategy<Value = WatchTarget> {
    (
        "[a-zA-Z0-9./-]{0,30}",
        "[a-zA-Z0-9-]{0,12}",
        prop::collection::vec("[a-z*A-Z0-9-]{0,10}", 0..4),
        prop::option::of(selector_like()),
        prop::option::of(selector_like()),
        any::<bool>(),
    )
        .prop_map(
            |(api_version, kind, namespaces, label_selector, field_selector, metadata_only)| {
                WatchTarget {
                    api_version,
                    kind,
                    namespaces,
                    label_selector,
                    field_selector,
                    metadata_only,
                }
            },
        )
}

fn spec() -> impl Strategy<Value = WatchPolicySpec> {
    (
        prop::collection::vec(target(), 0..4),
        prop::collection::vec(unit_like(), 7),
        prop::collection::vec(unit_like(), 2),
        any::<f64>(),
        any::<f64>(),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(targets, d, q, factor, jitter, max_retries, max_objects, suspend)| WatchPolicySpec {
                suspend,
                targets,
                timeouts: Timeouts {
                    watch: d[0].clone(),
                    idle: d[1].clone(),
                    request: d[2].clone(),
                    resync: d[3].clone(),
                },
                backoff: Backoff {
                    initial: d[4].clone(),
                    max: d[5].clone(),
                    factor,
                    jitter,
                    reset_after: d[6].clone(),
                    max_retries,
                },
                limits: Limits {
                    cpu: q[0].clone(),
                    max_objects,
                    max_event_size: q[1].clone(),
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn unit_parsers_never_panic_and_round_trip(s in unit_like()) {
        if let Ok(d) = s.parse::<GoDuration>() {
            prop_assert_eq!(d.to_string().parse::<GoDuration>().unwrap(), d);
        }
        if let Ok(c) = s.parse::<CpuQuantity>() {
            prop_assert!(c.millis() > 0);
            prop_assert_eq!(c.to_string().parse::<CpuQuantity>().unwrap(), c);
        }
        if let Ok(b) = s.parse::<ByteQuantity>() {
            prop_assert_eq!(b.to_string().parse::<ByteQuantity>().unwrap(), b);
        }
    }

    #[test]
    fn validate_never_panics_and_errors_always_name_a_spec_field(
        spec in spec(),
        trusted in any::<bool>(),
    ) {
        let ctx = ValidationContext::new("team-a").trusted(trusted);
        match spec.validate(&ctx) {
            Ok(config) => {
                prop_assert_eq!(config.targets.len(), spec.targets.len());
                prop_assert!(config.limits.cpu_millis > 0);
                prop_assert!(config.backoff.initial <= config.backoff.max);
            }
            Err(errors) => {
                prop_assert!(!errors.errors().is_empty());
                for e in errors.errors() {
                    prop_assert!(e.path.starts_with("spec."), "{}", e);
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
