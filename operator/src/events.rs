//! Kubernetes Events on target state transitions, rate-limited per policy so that a flapping
//! target cannot flood the API server. Which transitions are worth an Event is decided by a
//! pure function; the [`RateLimiter`] is a token bucket that aggregates what it holds back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use watchpool_api::TargetState;
use watchpool_engine::{PoolHealth, WatchKey};

/// Event reasons.
pub mod reason {
    /// A watch went silent and is being rebuilt.
    pub const STALLED: &str = "Stalled";
    /// A watch had to relist (its resourceVersion was too old or too new).
    pub const RELISTED: &str = "Relisted";
    /// The operator may not list or watch a target.
    pub const FORBIDDEN: &str = "Forbidden";
    /// A target's kind does not exist.
    pub const NOT_FOUND: &str = "NotFound";
    /// The API server refused the operator's credentials.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// A target gave up.
    pub const FAILED: &str = "Failed";
    /// The pool is held to its CPU budget.
    pub const CPU_THROTTLED: &str = "CPUThrottled";
    /// A watch is back to Watching after a problem.
    pub const RECOVERED: &str = "Recovered";
    /// The spec failed validation.
    pub const INVALID_SPEC: &str = "InvalidSpec";
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// One of [`reason`].
    pub reason: &'static str,
    /// Human-readable; never object contents.
    pub note: String,
}

/// Compares two health snapshots and lists the Events the change deserves.
pub fn transitions(before: &PoolHealth, after: &PoolHealth) -> Vec<Notice> {
    let old: BTreeMap<&WatchKey, _> = before.targets.iter().map(|t| (&t.key, t)).collect();
    let mut out = Vec::new();
    for t in &after.targets {
        let prev = old.get(&t.key);
        let prev_state = prev.map(|p| p.state);
        let what = format!(
            "{} {}",
            t.key.target.kind,
            t.key.namespace.as_deref().unwrap_or("(cluster)")
        );
        if prev_state != Some(t.state) {
            let problem = |r: &'static str, text: &str| Notice {
                warning: true,
                reason: r,
                note: format!("watch of {what} {text}"),
            };
            match t.state {
                TargetState::Stalled => {
                    out.push(problem(reason::STALLED, "went silent; rebuilding it"))
                }
                TargetState::Forbidden => out.push(problem(reason::FORBIDDEN, "is forbidden")),
                TargetState::NotFound => out.push(problem(
                    reason::NOT_FOUND,
                    "names a kind that does not exist",
                )),
                TargetState::Unauthorized => out.push(problem(
                    reason::UNAUTHORIZED,
                    "was refused the operator's credentials",
                )),
                TargetState::Failed => out.push(problem(reason::FAILED, "gave up")),
                TargetState::Watching if prev_state.is_some_and(crate::status::is_problem) => {
                    out.push(Notice {
                        warning: false,
                        reason: reason::RECOVERED,
                        note: format!("watch of {what} is watching again"),
                    });
                }
                _ => {}
            }
        }
        if let Some(p) = prev
            && t.relists > p.relists
        {
            out.push(Notice {
                warning: true,
                reason: reason::RELISTED,
                note: format!("watch of {what} relisted ({} relists so far)", t.relists),
            });
        }
    }
    if after.cpu.throttled && !before.cpu.throttled {
        out.push(Notice {
            warning: true,
            reason: reason::CPU_THROTTLED,
            note: format!(
                "the pool is held to its CPU budget of {}m",
                after.cpu.limit_millis
            ),
        });
    }
    out
}

/// A token bucket per policy: `burst` Events at once, then one per `refill`. What it holds back
/// is counted and mentioned in the next Event it lets through.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    burst: f64,
    refill: Duration,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl RateLimiter {
    /// 5 Events at once, then one every 12 s (5 per minute).
    pub fn per_minute(now: Instant) -> Self {
        Self::new(5, Duration::from_secs(12), now)
    }

    /// A bucket with `burst` tokens refilled one per `refill`.
    pub fn new(burst: u32, refill: Duration, now: Instant) -> Self {
        Self {
            burst: f64::from(burst),
            refill,
            tokens: f64::from(burst),
            last: now,
            suppressed: 0,
        }
    }

    /// Lets a notice through (possibly with a note about held-back ones) or holds it back.
    pub fn admit(&mut self, mut notice: Notice, now: Instant) -> Option<Notice> {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        if !self.refill.is_zero() {
            self.tokens =
                (self.tokens + elapsed.as_secs_f64() / self.refill.as_secs_f64()).min(self.burst);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.suppressed > 0 {
                notice.note.push_str(&format!(
                    " ({} more events were held back by the rate limit)",
                    self.suppressed
                ));
                self.suppressed = 0;
            }
            Some(notice)
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Events held back since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use watchpool_api::{NamespaceScope, TargetConfig};
    use watchpool_engine::{TargetHealth, WatchCounters};

    use super::*;

    fn notice() -> Notice {
        Notice {
            warning: true,
            reason: reason::STALLED,
            note: "x".into(),
        }
    }

    #[test]
    fn rate_limiter_lets_a_burst_through_then_one_per_refill() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::per_minute(t0);
        let passed = (0..100)
            .filter(|_| rl.admit(notice(), t0).is_some())
            .count();
        assert_eq!(passed, 5);
        assert_eq!(rl.suppressed(), 95);
        // After a minute of flapping at 10 events/s, at most 5 more got through.
        let mut passed = 0;
        for i in 1..=600u64 {
            if rl
                .admit(notice(), t0 + Duration::from_millis(100 * i))
                .is_some()
            {
                passed += 1;
            }
        }
        assert!((4..=6).contains(&passed), "passed {passed}");
    }

    #[test]
    fn held_back_events_are_mentioned_in_the_next_one() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1, Duration::from_secs(10), t0);
        assert!(rl.admit(notice(), t0).is_some());
        assert!(rl.admit(notice(), t0).is_none());
        assert!(rl.admit(notice(), t0).is_none());
        let n = rl.admit(notice(), t0 + Duration::from_secs(10)).unwrap();
        assert!(n.note.contains("2 more events"), "{}", n.note);
        assert_eq!(rl.suppressed(), 0);
    }

    fn th(state: TargetState, relists: u64) -> TargetHealth {
        TargetHealth {
            key: WatchKey {
                target: std::sync::Arc::new(TargetConfig {
                    api_version: "v1".into(),
                    group: String::new(),
                    version: "v1".into(),
                    kind: "Pod".into(),
                    scope: NamespaceScope::All,
                    label_selector: None,
                    field_selector: None,
                    metadata_only: false,
                }),
                namespace: None,
            },
            state,
            objects: 0,
            resource_version: None,
            connected_since: None,
            last_event_time: None,
            last_bookmark_time: None,
            reconnects: 0,
            relists,
            consecutive_failures: 0,
            next_retry_time: None,
            last_error: None,
            errors: Vec::new(),
            counters: WatchCounters::default(),
        }
    }

    fn pool(t: TargetHealth) -> PoolHealth {
        PoolHealth {
            targets: vec![t],
            cpu: Default::default(),
        }
    }

    #[test]
    fn transitions_name_the_new_problem_and_the_recovery() {
        let reasons = |a, b| {
            transitions(&a, &b)
                .into_iter()
                .map(|n| n.reason)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reasons(
                pool(th(TargetState::Watching, 0)),
                pool(th(TargetState::Stalled, 0))
            ),
            vec!["Stalled"]
        );
        assert_eq!(
            reasons(
                pool(th(TargetState::Stalled, 0)),
                pool(th(TargetState::Watching, 1))
            ),
            vec!["Recovered", "Relisted"]
        );
        assert_eq!(
            reasons(
                pool(th(TargetState::Listing, 0)),
                pool(th(TargetState::Watching, 0))
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            reasons(
                pool(th(TargetState::Watching, 0)),
                pool(th(TargetState::Watching, 0))
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            reasons(PoolHealth::default(), pool(th(TargetState::Forbidden, 0))),
            vec!["Forbidden"]
        );
    }
}
