//! The common shape of a fault scenario: an environment, the operator, one policy on the
//! scenario's ConfigMaps with a writer, baselines taken once the pool is synced, and the
//! standard end of every scenario (recovered, nothing lost, no leak after the fault and after
//! the policy is deleted), with the figures printed.

use std::time::{Duration, Instant};

use crate::env::{Env, EnvError};
use crate::figures::Figures;
use crate::judge::{self, CpuWindow, LeakSlack};
use crate::operator::Operator;
use crate::policy::TestPolicy;
use crate::procstat::ProcSample;
use crate::requests::{self, WatchRequest};
use crate::writer::Writer;
use kube_emulator::{Fault, FaultId, FaultSpec};

/// The name of the scenario's policy.
pub const POLICY: &str = "e2e";

/// How long the first sync of a policy may take.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(20);

/// A running scenario. Fields drop in order: the operator is killed before the environment
/// (and its emulator) goes.
#[derive(Debug)]
pub struct Scenario {
    /// The operator process.
    pub operator: Operator,
    /// The scenario's measured figures.
    pub figures: Figures,
    /// The policy as applied.
    pub policy: TestPolicy,
    /// The writer of the watched namespace.
    pub writer: Writer,
    /// The operator with no pool (before the policy was applied).
    pub idle_baseline: ProcSample,
    /// The operator with the pool synced, before any fault.
    pub baseline: ProcSample,
    /// CPU of the synced pool with no fault, percent of one core.
    pub baseline_cpu_pct: f64,
    /// The environment.
    pub env: Env,
}

impl Scenario {
    /// Starts the environment and the operator, creates 5 ConfigMaps, applies the scenario's
    /// policy (the defaults of [`TestPolicy::configmaps`] changed by `tweak`), and waits until
    /// it is Ready and its cache equals the server.
    pub async fn start(
        test: &str,
        row: &str,
        tweak: impl FnOnce(&mut TestPolicy),
    ) -> Result<Self, EnvError> {
        let env = Env::start(test).await?;
        let operator = env.start_operator(&env.operator_options()).await?;
        Self::with(env, operator, row, tweak).await
    }

    /// As [`Scenario::start`] on an environment and operator already running.
    pub async fn with(
        env: Env,
        operator: Operator,
        row: &str,
        tweak: impl FnOnce(&mut TestPolicy),
    ) -> Result<Self, EnvError> {
        let mut figures = Figures::new(row);
        let mut policy = TestPolicy::configmaps(POLICY, &env.namespace);
        tweak(&mut policy);
        let mut writer = env.writer("cm");
        writer.create_many(5).await;
        let idle_baseline = operator.sample()?;
        let started = Instant::now();
        env.apply_policy(&policy).await?;
        env.wait_ready(POLICY, SYNC_DEADLINE).await?;
        judge::wait_cache_matches(&env, &operator, POLICY, &env.namespace, SYNC_DEADLINE).await?;
        figures.ms("sync_ms", started.elapsed());
        let cpu = CpuWindow::start(&operator)?;
        // A short no-fault window: the baseline the fault's CPU is compared with.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (baseline_cpu_pct, _) = cpu.pct(&operator)?;
        figures.pct("baseline_cpu_pct", baseline_cpu_pct);
        let baseline = operator.sample()?;
        Ok(Self {
            operator,
            figures,
            policy,
            writer,
            idle_baseline,
            baseline,
            baseline_cpu_pct,
            env,
        })
    }

    /// The scenario's namespace (policy and watched ConfigMaps).
    pub fn ns(&self) -> &str {
        &self.env.namespace
    }

    /// The emulator, or `None` (with the reason printed) on a real cluster.
    pub fn require_emulator(&self) -> Option<&kube_emulator::Emulator> {
        self.env
            .require_emulator(&format!("row={}", self.figures_row()))
    }

    fn figures_row(&self) -> String {
        self.figures
            .line()
            .split_whitespace()
            .nth(1)
            .and_then(|kv| kv.strip_prefix("row="))
            .unwrap_or("?")
            .to_owned()
    }

    /// True on a real cluster, after printing why the scenario stops there (faults can only be
    /// injected into the emulator).
    pub fn skip_without_emulator(&self) -> bool {
        self.require_emulator().is_none()
    }

    /// Injects a fault (no-op on a real cluster).
    pub fn add_fault(&self, spec: FaultSpec) -> Option<FaultId> {
        self.env.emulator().map(|e| e.faults().add(spec))
    }

    /// Injects a fault on the list and watch requests of the scenario's ConfigMaps.
    pub fn add_watch_fault(&self, fault: Fault, verbs: &[&str]) -> Option<FaultId> {
        self.add_fault(
            FaultSpec::new(fault)
                .resource("configmaps")
                .namespace(&self.env.namespace)
                .verbs(verbs),
        )
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        if let Some(e) = self.env.emulator() {
            e.faults().clear();
        }
    }

    /// The operator's list and watch requests on the scenario's ConfigMaps so far.
    pub fn requests(&self) -> Vec<WatchRequest> {
        self.env
            .emulator()
            .map(|e| requests::operator_requests(&e.requests(), "configmaps", &self.env.namespace))
            .unwrap_or_default()
    }

    /// A mark in the operator's log (its line count now).
    pub fn log_mark(&self) -> usize {
        self.operator.log_text().lines().count()
    }

    /// WARN and ERROR lines the operator logged since `mark`.
    pub fn warnings_since(&self, mark: usize) -> Vec<String> {
        self.operator
            .log_text()
            .lines()
            .skip(mark)
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(str::to_owned)
            .collect()
    }

    /// Checks that a sustained fault lasting `fault` did not flood the log: at most a few
    /// WARN/ERROR lines a minute (FAULTS.md), here at most `5 + 6 per minute`. Records
    /// `warn_lines`.
    pub fn judge_log_bounded(&mut self, mark: usize, fault: Duration) {
        let lines = self.warnings_since(mark);
        self.figures.set("warn_lines", lines.len());
        let allowed = 5 + (fault.as_secs_f64() / 10.0).ceil() as usize;
        assert!(
            lines.len() <= allowed,
            "{} WARN/ERROR lines during a {fault:?} fault (at most {allowed}):\n{}",
            lines.len(),
            lines.join("\n")
        );
    }

    /// Re-applies the policy after changing it.
    pub async fn reapply(&mut self, change: impl FnOnce(&mut TestPolicy)) -> Result<(), EnvError> {
        change(&mut self.policy);
        self.env.apply_policy(&self.policy).await
    }

    /// The standard end after a fault was cleared at `cleared`: the writer churns, the policy
    /// comes back to Ready=True / Watching within `deadline`, the cache equals a fresh list, and
    /// fds/RSS return near the synced baseline. Records and returns `recover_ms` (from
    /// `cleared` to Ready with a matching cache).
    pub async fn expect_recovery(
        &mut self,
        cleared: Instant,
        deadline: Duration,
    ) -> Result<Duration, EnvError> {
        self.writer.churn().await;
        let ns = self.env.namespace.clone();
        judge::wait_recovered(&self.env, POLICY, &ns, deadline).await?;
        judge::wait_cache_matches(&self.env, &self.operator, POLICY, &ns, deadline).await?;
        let recovered = cleared.elapsed();
        self.figures.ms("recover_ms", recovered);
        let after = judge::wait_no_leak(
            &self.operator,
            &self.baseline,
            LeakSlack::default(),
            Duration::from_secs(15),
        )
        .await?;
        self.figures
            .set("fds", format!("{}->{}", self.baseline.fds, after.fds))
            .set(
                "rss_kib",
                format!(
                    "{}->{}",
                    self.baseline.rss_bytes >> 10,
                    after.rss_bytes >> 10
                ),
            );
        Ok(recovered)
    }

    /// Deletes the policy, waits until it is gone, checks fds/RSS return near the operator's
    /// baseline without a pool, and prints the figures.
    pub async fn finish(mut self) -> Result<(), EnvError> {
        self.env
            .kubectl
            .run(
                &[
                    "delete",
                    "wp",
                    POLICY,
                    "-n",
                    &self.env.namespace,
                    "--timeout=20s",
                ],
                None,
            )
            .await?;
        let after = judge::wait_no_leak(
            &self.operator,
            &self.idle_baseline,
            LeakSlack::default(),
            Duration::from_secs(15),
        )
        .await?;
        self.figures.set(
            "fds_after_delete",
            format!("{}->{}", self.idle_baseline.fds, after.fds),
        );
        self.figures.print();
        Ok(())
    }
}
