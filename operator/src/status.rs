//! Pure status derivation: from what the controller wants ([`Phase`]) and the pool's health
//! snapshot to a [`WatchPolicyStatus`], with kstatus conditions whose `lastTransitionTime` is
//! kept while their status does not change. Also decides whether a change is worth an
//! immediate write or may wait for the counters interval.

use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use watchpool_api::{CpuStatus, TargetError, TargetState, TargetStatus, WatchPolicyStatus};
use watchpool_engine::{PoolHealth, TargetHealth, WatchKey};

/// Condition types.
pub mod condition {
    /// True when every target is synced and watching.
    pub const READY: &str = "Ready";
    /// True when some target is not watching after it was, or is failing.
    pub const DEGRADED: &str = "Degraded";
    /// True while the pool is held to its CPU budget.
    pub const CPU_THROTTLED: &str = "CPUThrottled";
}

/// Condition reasons (besides the target states, used as `Degraded` reasons).
pub mod reason {
    /// Ready=True.
    pub const ALL_TARGETS_WATCHING: &str = "AllTargetsWatching";
    /// Ready=False while targets start or recover.
    pub const TARGETS_NOT_READY: &str = "TargetsNotReady";
    /// The spec failed validation.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// Degraded=False, CPUThrottled=False.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// CPUThrottled=True.
    pub const OVER_BUDGET: &str = "OverBudget";
    /// Degraded=False with no target at all.
    pub const NO_TARGETS: &str = "NoTargets";
}

/// What the controller decided for a policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// A pool runs; its health says the rest.
    Running,
    /// Suspended: no pool; these watches would run.
    Suspended(Vec<WatchKey>),
    /// The spec is invalid: no pool; the validation messages.
    Invalid(String),
}

/// Builds the status. `previous` supplies the `lastTransitionTime` of conditions whose status
/// did not change; `ever_watching` says which watches were Watching at some point (so a
/// watch that is starting for the first time does not count as degraded).
pub fn build(
    generation: Option<i64>,
    phase: &Phase,
    health: &PoolHealth,
    ever_watching: &dyn Fn(&WatchKey) -> bool,
    previous: &[Condition],
    now: SystemTime,
) -> WatchPolicyStatus {
    let mut status = WatchPolicyStatus {
        observed_generation: generation,
        ..Default::default()
    };
    let conditions: [(&str, bool, String, String); 3] = match phase {
        Phase::Invalid(message) => [
            (
                condition::READY,
                false,
                reason::INVALID_SPEC.into(),
                message.clone(),
            ),
            (
                condition::DEGRADED,
                false,
                reason::INVALID_SPEC.into(),
                "no pool runs for an invalid spec".into(),
            ),
            (
                condition::CPU_THROTTLED,
                false,
                reason::AS_EXPECTED.into(),
                "no pool runs".into(),
            ),
        ],
        Phase::Suspended(keys) => {
            status.target_count = keys.len() as i64;
            status.targets = keys.iter().map(suspended_target).collect();
            [
                (
                    condition::READY,
                    false,
                    reason::SUSPENDED.into(),
                    "spec.suspend is true: no watch runs".into(),
                ),
                (
                    condition::DEGRADED,
                    false,
                    reason::SUSPENDED.into(),
                    "spec.suspend is true".into(),
                ),
                (
                    condition::CPU_THROTTLED,
                    false,
                    reason::AS_EXPECTED.into(),
                    "no pool runs".into(),
                ),
            ]
        }
        Phase::Running => {
            let targets = &health.targets;
            status.target_count = targets.len() as i64;
            status.watching = targets
                .iter()
                .filter(|t| t.state == TargetState::Watching)
                .count() as i64;
            status.objects = targets.iter().map(|t| t.objects as i64).sum();
            status.reconnects = targets.iter().map(|t| t.reconnects as i64).sum();
            status.cpu = Some(CpuStatus {
                used: millicores(health.cpu.used_millis),
                limit: format!("{}m", health.cpu.limit_millis),
                throttled: health.cpu.throttled,
            });
            status.targets = targets.iter().map(target_status).collect();

            let not_watching: Vec<&TargetHealth> = targets
                .iter()
                .filter(|t| t.state != TargetState::Watching)
                .collect();
            let ready = if targets.is_empty() {
                (
                    false,
                    reason::TARGETS_NOT_READY.to_owned(),
                    "the pool has not reported its watches yet".to_owned(),
                )
            } else if not_watching.is_empty() {
                (
                    true,
                    reason::ALL_TARGETS_WATCHING.to_owned(),
                    format!(
                        "{} of {} watches are watching",
                        status.watching, status.target_count
                    ),
                )
            } else {
                (
                    false,
                    reason::TARGETS_NOT_READY.to_owned(),
                    format!(
                        "{} of {} watches are watching; not watching: {}",
                        status.watching,
                        status.target_count,
                        describe(&not_watching)
                    ),
                )
            };
            let degraded_targets: Vec<&TargetHealth> = targets
                .iter()
                .filter(|t| {
                    is_problem(t.state)
                        || (t.state != TargetState::Watching && ever_watching(&t.key))
                })
                .collect();
            let degraded = match degraded_targets.first() {
                Some(first) => (
                    true,
                    first.state.as_str().to_owned(),
                    describe(&degraded_targets),
                ),
                None if targets.is_empty() => (
                    false,
                    reason::NO_TARGETS.to_owned(),
                    "no watch reported yet".to_owned(),
                ),
                None => (
                    false,
                    reason::AS_EXPECTED.to_owned(),
                    "no watch is failing".to_owned(),
                ),
            };
            let throttled = if health.cpu.throttled {
                (
                    true,
                    reason::OVER_BUDGET.to_owned(),
                    format!(
                        "the pool is held to its CPU budget of {}m",
                        health.cpu.limit_millis
                    ),
                )
            } else {
                (
                    false,
                    reason::AS_EXPECTED.to_owned(),
                    "the pool runs within its CPU budget".to_owned(),
                )
            };
            [
                (condition::READY, ready.0, ready.1, ready.2),
                (condition::DEGRADED, degraded.0, degraded.1, degraded.2),
                (
                    condition::CPU_THROTTLED,
                    throttled.0,
                    throttled.1,
                    throttled.2,
                ),
            ]
        }
    };
    status.conditions = conditions
        .into_iter()
        .map(|(type_, value, reason, message)| {
            make_condition(type_, value, reason, message, generation, previous, now)
        })
        .collect();
    status
}

/// States that are a problem on their own, whether or not the watch ever worked.
pub fn is_problem(state: TargetState) -> bool {
    matches!(
        state,
        TargetState::Backoff
            | TargetState::Stalled
            | TargetState::Forbidden
            | TargetState::NotFound
            | TargetState::Unauthorized
            | TargetState::Failed
    )
}

fn describe(targets: &[&TargetHealth]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = targets
        .iter()
        .take(SHOWN)
        .map(|t| {
            let mut s = format!(
                "{} {}",
                t.key.target.kind,
                t.key.namespace.as_deref().unwrap_or("(cluster)")
            );
            s.push_str(&format!(" is {}", t.state.as_str()));
            if let Some(err) = &t.last_error {
                s.push_str(&format!(" ({})", err.reason.as_str()));
            }
            s
        })
        .collect();
    if targets.len() > SHOWN {
        parts.push(format!("and {} more", targets.len() - SHOWN));
    }
    parts.join(", ")
}

fn make_condition(
    type_: &str,
    value: bool,
    reason: String,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
    now: SystemTime,
) -> Condition {
    let status = if value { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time(now));
    Condition {
        type_: type_.to_owned(),
        status,
        reason,
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn suspended_target(key: &WatchKey) -> TargetStatus {
    TargetStatus {
        api_version: key.target.api_version.clone(),
        kind: key.target.kind.clone(),
        namespace: key.namespace.clone().unwrap_or_default(),
        state: TargetState::Suspended,
        ..Default::default()
    }
}

fn target_status(t: &TargetHealth) -> TargetStatus {
    TargetStatus {
        api_version: t.key.target.api_version.clone(),
        kind: t.key.target.kind.clone(),
        namespace: t.key.namespace.clone().unwrap_or_default(),
        state: t.state,
        objects: t.objects as i64,
        resource_version: t.resource_version.clone(),
        connected_since: t.connected_since.map(time),
        last_event_time: t.last_event_time.map(time),
        last_bookmark_time: t.last_bookmark_time.map(time),
        reconnects: t.reconnects as i64,
        relists: t.relists as i64,
        consecutive_failures: i64::from(t.consecutive_failures),
        next_retry_time: t.next_retry_time.map(time),
        last_error: t.last_error.as_ref().map(|e| TargetError {
            reason: e.reason,
            message: e.message.clone(),
            time: time(e.time),
        }),
    }
}

/// A `metav1.Time` at second precision (what the API server keeps).
pub fn time(t: SystemTime) -> Time {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let secs = ts.as_second();
    Time(jiff::Timestamp::from_second(secs).unwrap_or(ts))
}

/// Millicores as a Kubernetes quantity (`4m`).
pub fn millicores(m: f64) -> String {
    if !m.is_finite() || m <= 0.0 {
        return "0m".into();
    }
    format!("{}m", m.round() as u64)
}

/// What a user would notice: everything except the counters and the times that move with
/// every event. Two statuses with the same significant view differ only in counters.
#[derive(Debug, PartialEq)]
pub struct Significant<'a> {
    observed_generation: Option<i64>,
    conditions: Vec<(&'a str, &'a str, &'a str, &'a str)>,
    target_count: i64,
    watching: i64,
    targets: Vec<SignificantTarget<'a>>,
}

#[derive(Debug, PartialEq)]
struct SignificantTarget<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: &'a str,
    state: TargetState,
    connected_since: Option<&'a Time>,
    next_retry_time: Option<&'a Time>,
    last_error: Option<(&'a str, &'a Time)>,
    cpu_throttled: bool,
}

/// The significant view of a status.
pub fn significant(status: &WatchPolicyStatus) -> Significant<'_> {
    let throttled = status.cpu.as_ref().is_some_and(|c| c.throttled);
    Significant {
        observed_generation: status.observed_generation,
        conditions: status
            .conditions
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_str(),
                    c.message.as_str(),
                )
            })
            .collect(),
        target_count: status.target_count,
        watching: status.watching,
        targets: status
            .targets
            .iter()
            .map(|t| SignificantTarget {
                api_version: &t.api_version,
                kind: &t.kind,
                namespace: &t.namespace,
                state: t.state,
                connected_since: t.connected_since.as_ref(),
                next_retry_time: t.next_retry_time.as_ref(),
                last_error: t.last_error.as_ref().map(|e| (e.message.as_str(), &e.time)),
                cpu_throttled: throttled,
            })
            .collect(),
    }
}

/// The counters a user reads in `kubectl get wp` and per target: written within the status
/// interval when they move.
type CounterView<'a> = (i64, i64, Option<&'a str>, Vec<(i64, i64, i64, i64)>);

fn counters(status: &WatchPolicyStatus) -> CounterView<'_> {
    (
        status.objects,
        status.reconnects,
        status.cpu.as_ref().map(|c| c.limit.as_str()),
        status
            .targets
            .iter()
            .map(|t| (t.objects, t.reconnects, t.relists, t.consecutive_failures))
            .collect(),
    )
}

/// Whether the CPU used moved by more than noise: at least 5m or a tenth of the budget. A
/// smaller drift (an idle pool reading 0m, then 1m) waits for the slow refresh, so an idle
/// pool does not rewrite its status every interval.
fn cpu_moved(last: &WatchPolicyStatus, new: &WatchPolicyStatus) -> bool {
    // Always written as "{n}m" (see `millicores`).
    fn millis(q: &str) -> Option<f64> {
        q.strip_suffix('m')?.parse().ok()
    }
    // CPU appearing or disappearing changes its limit, which `counters` compares.
    let (Some(a), Some(b)) = (last.cpu.as_ref(), new.cpu.as_ref()) else {
        return false;
    };
    match (millis(&a.used), millis(&b.used), millis(&b.limit)) {
        (Some(x), Some(y), Some(limit)) => (x - y).abs() >= (limit / 10.0).max(5.0),
        _ => a.used != b.used,
    }
}

/// How soon a new status must be written, given the last one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteNeed {
    /// Identical: never write.
    None,
    /// Only times and resourceVersions moved (events or bookmarks with no visible effect):
    /// refreshed rarely, see [`times_interval`].
    Times,
    /// Counters moved: write within the status interval.
    Counters,
    /// Something a user cares about changed: write now.
    Now,
}

/// How long a status whose only changes are times and resourceVersions may wait: an idle
/// pool's bookmarks would otherwise cause a write per interval per policy.
pub fn times_interval(status_interval: Duration) -> Duration {
    (status_interval * 6).max(Duration::from_secs(60))
}

/// Compares a new status with the last written one.
pub fn write_need(last: Option<&WatchPolicyStatus>, new: &WatchPolicyStatus) -> WriteNeed {
    match last {
        None => WriteNeed::Now,
        Some(last) if last == new => WriteNeed::None,
        Some(last) if significant(last) != significant(new) => WriteNeed::Now,
        Some(last) if counters(last) != counters(new) || cpu_moved(last, new) => {
            WriteNeed::Counters
        }
        Some(_) => WriteNeed::Times,
    }
}

#[cfg(test)]
mod tests {
    use watchpool_api::{NamespaceScope, TargetConfig};
    use watchpool_engine::{CpuHealth, WatchCounters};

    use super::*;

    fn key(ns: &str) -> WatchKey {
        WatchKey {
            target: std::sync::Arc::new(TargetConfig {
                api_version: "v1".into(),
                group: String::new(),
                version: "v1".into(),
                kind: "Pod".into(),
                scope: NamespaceScope::Namespaces(vec![ns.into()]),
                label_selector: None,
                field_selector: None,
                metadata_only: false,
            }),
            namespace: Some(ns.into()),
        }
    }

    fn target(ns: &str, state: TargetState, objects: u64) -> TargetHealth {
        TargetHealth {
            key: key(ns),
            state,
            objects,
            resource_version: Some("10".into()),
            connected_since: None,
            last_event_time: None,
            last_bookmark_time: None,
            reconnects: 0,
            relists: 0,
            consecutive_failures: 0,
            next_retry_time: None,
            last_error: None,
            errors: Vec::new(),
            counters: WatchCounters::default(),
        }
    }

    fn health(targets: Vec<TargetHealth>) -> PoolHealth {
        PoolHealth {
            targets,
            cpu: CpuHealth {
                used_millis: 3.6,
                limit_millis: 100,
                ..Default::default()
            },
        }
    }

    fn cond<'a>(s: &'a WatchPolicyStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_watching_is_ready_and_not_degraded() {
        let h = health(vec![
            target("a", TargetState::Watching, 3),
            target("b", TargetState::Watching, 4),
        ]);
        let s = build(
            Some(2),
            &Phase::Running,
            &h,
            &|_| true,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Ready").reason, "AllTargetsWatching");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(s.objects, 7);
        assert_eq!(s.watching, 2);
        assert_eq!(s.target_count, 2);
        assert_eq!(s.cpu.as_ref().unwrap().used, "4m");
        assert_eq!(s.cpu.as_ref().unwrap().limit, "100m");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn starting_targets_are_not_ready_but_not_degraded() {
        let h = health(vec![target("a", TargetState::Listing, 0)]);
        let s = build(
            Some(1),
            &Phase::Running,
            &h,
            &|_| false,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Ready").reason, "TargetsNotReady");
        assert_eq!(cond(&s, "Degraded").status, "False");
    }

    #[test]
    fn a_failing_target_degrades_with_its_state_as_reason() {
        let h = health(vec![
            target("a", TargetState::Watching, 1),
            target("b", TargetState::Forbidden, 0),
        ]);
        let s = build(
            Some(1),
            &Phase::Running,
            &h,
            &|_| false,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Degraded").status, "True");
        assert_eq!(cond(&s, "Degraded").reason, "Forbidden");
        assert!(
            cond(&s, "Ready").message.contains("Pod b is Forbidden"),
            "{}",
            cond(&s, "Ready").message
        );
        // A watch that relists after it was watching is degraded too.
        let h = health(vec![target("a", TargetState::Listing, 1)]);
        let s = build(
            Some(1),
            &Phase::Running,
            &h,
            &|_| true,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Degraded").reason, "Listing");
    }

    #[test]
    fn transition_time_is_kept_while_the_status_value_holds() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = health(vec![target("a", TargetState::Watching, 1)]);
        let first = build(Some(1), &Phase::Running, &h, &|_| true, &[], t0);
        let later = t0 + Duration::from_secs(60);
        let second = build(
            Some(1),
            &Phase::Running,
            &h,
            &|_| true,
            &first.conditions,
            later,
        );
        assert_eq!(
            cond(&second, "Ready").last_transition_time,
            cond(&first, "Ready").last_transition_time
        );
        let h2 = health(vec![target("a", TargetState::Stalled, 1)]);
        let third = build(
            Some(1),
            &Phase::Running,
            &h2,
            &|_| true,
            &second.conditions,
            later,
        );
        assert_eq!(cond(&third, "Ready").last_transition_time, time(later));
        assert_eq!(cond(&third, "Degraded").reason, "Stalled");
    }

    #[test]
    fn invalid_and_suspended_phases_have_their_reasons() {
        let s = build(
            Some(3),
            &Phase::Invalid("spec.targets[0].kind: bad".into()),
            &PoolHealth::default(),
            &|_| false,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Ready").reason, "InvalidSpec");
        assert!(cond(&s, "Ready").message.contains("spec.targets[0].kind"));
        assert!(s.targets.is_empty());
        let s = build(
            Some(3),
            &Phase::Suspended(vec![key("a")]),
            &PoolHealth::default(),
            &|_| false,
            &[],
            SystemTime::now(),
        );
        assert_eq!(cond(&s, "Ready").reason, "Suspended");
        assert_eq!(s.targets[0].state, TargetState::Suspended);
    }

    #[test]
    fn bookmark_times_alone_wait_longest() {
        let now = SystemTime::now();
        let mut t = target("a", TargetState::Watching, 1);
        let a = build(
            Some(1),
            &Phase::Running,
            &health(vec![t.clone()]),
            &|_| true,
            &[],
            now,
        );
        t.last_bookmark_time = Some(now);
        t.resource_version = Some("99".into());
        let b = build(
            Some(1),
            &Phase::Running,
            &health(vec![t]),
            &|_| true,
            &a.conditions,
            now,
        );
        assert_eq!(write_need(Some(&a), &b), WriteNeed::Times);
        assert_eq!(
            times_interval(Duration::from_secs(10)),
            Duration::from_secs(60)
        );
        assert_eq!(
            times_interval(Duration::from_secs(30)),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn counters_only_changes_are_batched_and_state_changes_are_not() {
        let now = SystemTime::now();
        let a = build(
            Some(1),
            &Phase::Running,
            &health(vec![target("a", TargetState::Watching, 1)]),
            &|_| true,
            &[],
            now,
        );
        assert_eq!(write_need(None, &a), WriteNeed::Now);
        assert_eq!(write_need(Some(&a), &a.clone()), WriteNeed::None);
        let b = build(
            Some(1),
            &Phase::Running,
            &health(vec![target("a", TargetState::Watching, 50)]),
            &|_| true,
            &a.conditions,
            now,
        );
        assert_eq!(write_need(Some(&a), &b), WriteNeed::Counters);
        let c = build(
            Some(1),
            &Phase::Running,
            &health(vec![target("a", TargetState::Backoff, 50)]),
            &|_| true,
            &b.conditions,
            now,
        );
        assert_eq!(write_need(Some(&b), &c), WriteNeed::Now);
        let d = build(
            Some(2),
            &Phase::Running,
            &health(vec![target("a", TargetState::Watching, 50)]),
            &|_| true,
            &b.conditions,
            now,
        );
        assert_eq!(write_need(Some(&b), &d), WriteNeed::Now);
    }

    #[test]
    fn cpu_noise_waits_for_the_slow_refresh_but_a_real_move_is_written() {
        let status = |used: &str| WatchPolicyStatus {
            cpu: Some(CpuStatus {
                used: used.into(),
                limit: "100m".into(),
                throttled: false,
            }),
            ..WatchPolicyStatus::default()
        };
        assert_eq!(
            write_need(Some(&status("0m")), &status("1m")),
            WriteNeed::Times
        );
        assert_eq!(
            write_need(Some(&status("4m")), &status("1m")),
            WriteNeed::Times
        );
        assert_eq!(
            write_need(Some(&status("1m")), &status("40m")),
            WriteNeed::Counters
        );
    }
}
