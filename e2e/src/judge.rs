//! The judges of FAULTS.md ("How every scenario is judged"), each a condition with a deadline:
//! nothing lost (the operator's cache equals a fresh list), truthful status (the target's
//! state, reason and counters), no spin (the operator's CPU over a window), no leak (fds and
//! RSS back near the baseline).

use std::time::Duration;

use watchpool_api::{TargetState, TargetStatus, WatchPolicy};

use crate::env::{Env, EnvError};
use crate::operator::{Operator, OperatorError};
use crate::policy;
use crate::pools;
use crate::procstat::ProcSample;
use crate::wait::{self, Poll};

/// The most CPU the operator may use during a fault, in percent of one core (FAULTS.md: under
/// 5 % of one core over any 30 s window).
pub const MAX_CPU_PCT: f64 = 5.0;

/// Waits until the operator's cache of the ConfigMaps of `watch_namespace` for policy `name`
/// (in the scenario's namespace) has the count and digest of a fresh list of the server.
/// Returns the time it took.
pub async fn wait_cache_matches(
    env: &Env,
    operator: &Operator,
    name: &str,
    watch_namespace: &str,
    deadline: Duration,
) -> Result<Duration, EnvError> {
    wait_kind_cache_matches(
        env,
        operator,
        name,
        "v1",
        "ConfigMap",
        watch_namespace,
        deadline,
    )
    .await
}

/// Waits until the operator's cache of `apiVersion`/`kind` in `watch_namespace` for policy
/// `name` (in the scenario's namespace) has the count and digest of a fresh list of the
/// server. Returns the time it took.
pub async fn wait_kind_cache_matches(
    env: &Env,
    operator: &Operator,
    name: &str,
    api_version: &str,
    kind: &str,
    watch_namespace: &str,
    deadline: Duration,
) -> Result<Duration, EnvError> {
    let (_, took) = wait::until(
        &format!("the {kind} cache of policy {name} for {watch_namespace:?} to equal a fresh list"),
        deadline,
        Duration::from_millis(100),
        || async move {
            let fresh = match env
                .fresh_list(api_version, kind, watch_namespace, None)
                .await
            {
                Ok(fresh) => fresh,
                Err(e) => return Poll::Pending(format!("fresh list failed: {e}")),
            };
            let doc = match operator.debug_pools().await {
                Ok(doc) => doc,
                Err(e) => return Poll::Pending(format!("/debug/pools failed: {e}")),
            };
            let all = match pools::parse(doc) {
                Ok(all) => all,
                Err(e) => return Poll::Pending(format!("/debug/pools undecodable: {e}")),
            };
            match pools::watch(&all, &env.namespace, name, kind, watch_namespace) {
                Some(w) if w.count == fresh.0 && w.digest == fresh.1 => Poll::Ready(()),
                Some(w) => Poll::Pending(format!(
                    "cache {} objects digest {} state {}, server {} objects digest {}",
                    w.count, w.digest, w.state, fresh.0, fresh.1
                )),
                None => Poll::Pending(format!("no such watch in /debug/pools: {all:?}")),
            }
        },
    )
    .await?;
    Ok(took)
}

/// The status entry of the ConfigMap watch of `watch_namespace`.
pub fn configmap_target<'a>(
    policy: &'a WatchPolicy,
    watch_namespace: &str,
) -> Option<&'a TargetStatus> {
    policy::target(policy, "ConfigMap", watch_namespace)
}

/// Waits until the ConfigMap watch of policy `name` in `watch_namespace` satisfies `check`.
pub async fn wait_target(
    env: &Env,
    name: &str,
    watch_namespace: &str,
    what: &str,
    deadline: Duration,
    check: impl Fn(&TargetStatus) -> bool,
) -> Result<(WatchPolicy, Duration), EnvError> {
    env.wait_policy(name, what, deadline, |p| {
        configmap_target(p, watch_namespace).is_some_and(&check)
    })
    .await
}

/// Waits until the ConfigMap watch of policy `name` in `watch_namespace` is in `state`.
pub async fn wait_state(
    env: &Env,
    name: &str,
    watch_namespace: &str,
    state: TargetState,
    deadline: Duration,
) -> Result<(WatchPolicy, Duration), EnvError> {
    wait_target(
        env,
        name,
        watch_namespace,
        &format!("state {state:?}"),
        deadline,
        |t| t.state == state,
    )
    .await
}

/// Waits until policy `name` is Ready=True again and its ConfigMap watch in
/// `watch_namespace` is Watching.
pub async fn wait_recovered(
    env: &Env,
    name: &str,
    watch_namespace: &str,
    deadline: Duration,
) -> Result<(WatchPolicy, Duration), EnvError> {
    env.wait_policy(name, "Ready=True and Watching", deadline, |p| {
        policy::is_ready(p)
            && configmap_target(p, watch_namespace)
                .is_some_and(|t| t.state == TargetState::Watching)
    })
    .await
}

/// CPU of the operator over a measured window.
#[derive(Clone, Copy, Debug)]
pub struct CpuWindow {
    start: ProcSample,
}

impl CpuWindow {
    /// Starts measuring now.
    pub fn start(operator: &Operator) -> Result<Self, OperatorError> {
        Ok(Self {
            start: operator.sample()?,
        })
    }

    /// Wall time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.at.elapsed()
    }

    /// CPU in percent of one core since the start, and the CPU time used.
    pub fn pct(&self, operator: &Operator) -> Result<(f64, Duration), OperatorError> {
        let now = operator.sample()?;
        Ok((
            now.cpu_pct_since(&self.start),
            now.cpu.saturating_sub(self.start.cpu),
        ))
    }
}

/// Measures the operator's CPU over `window` (a measurement over a fixed duration, not a wait
/// for a condition).
pub async fn cpu_over(operator: &Operator, window: Duration) -> Result<f64, OperatorError> {
    let meter = CpuWindow::start(operator)?;
    tokio::time::sleep(window).await;
    Ok(meter.pct(operator)?.0)
}

/// How far fds and RSS may rise above the baseline and still count as "back to baseline".
#[derive(Clone, Copy, Debug)]
pub struct LeakSlack {
    /// Extra open fds tolerated (idle pooled connections, a log file reopened…).
    pub fds: usize,
    /// Extra RSS tolerated, in bytes (allocator caches do not give everything back).
    pub rss_bytes: u64,
}

impl Default for LeakSlack {
    fn default() -> Self {
        Self {
            fds: 4,
            rss_bytes: 24 << 20,
        }
    }
}

/// Waits until the operator's fds and RSS are back within `slack` of `baseline`. Returns the
/// sample that satisfied it.
pub async fn wait_no_leak(
    operator: &Operator,
    baseline: &ProcSample,
    slack: LeakSlack,
    deadline: Duration,
) -> Result<ProcSample, EnvError> {
    let (sample, _) = wait::until(
        "open fds and RSS back near the baseline",
        deadline,
        Duration::from_millis(200),
        || async move {
            match operator.sample() {
                Ok(s)
                    if s.fds <= baseline.fds + slack.fds
                        && s.rss_bytes <= baseline.rss_bytes + slack.rss_bytes =>
                {
                    Poll::Ready(s)
                }
                Ok(s) => Poll::Pending(format!(
                    "fds {} (baseline {}), rss {} KiB (baseline {} KiB)",
                    s.fds,
                    baseline.fds,
                    s.rss_bytes >> 10,
                    baseline.rss_bytes >> 10
                )),
                Err(e) => Poll::Pending(e.to_string()),
            }
        },
    )
    .await?;
    Ok(sample)
}
