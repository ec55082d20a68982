//! Operator-level faults (FAULTS.md): the operator killed and restarted mid-run, a killed
//! leader taken over by its standby, the operator's own WatchPolicy watch under faults
//! (row 23), a policy changed 50 times then deleted and the operator shut down (row 24), and
//! the operator's own configuration refused at start.

// Tests fail loudly on a broken environment; unwrap keeps the scenarios readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube_emulator::{Fault, FaultSpec};
use watchpool_api::{TargetState, WatchPolicy};
use watchpool_e2e::env::Env;
use watchpool_e2e::figures::Figures;
use watchpool_e2e::judge::{self, CpuWindow, LeakSlack, MAX_CPU_PCT};
use watchpool_e2e::operator::{Operator, OperatorOptions};
use watchpool_e2e::policy::{self, TestPolicy};
use watchpool_e2e::pools;
use watchpool_e2e::requests;
use watchpool_e2e::scenario::{POLICY, Scenario};
use watchpool_e2e::wait::{self, Poll};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Pools the operator runs now, by policy `namespace/name`.
async fn pools_of(operator: &Operator) -> Vec<String> {
    match operator.debug_pools().await.map(pools::parse) {
        Ok(Ok(all)) => all
            .into_iter()
            .filter(|p| !p.watches.is_empty())
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect(),
        _ => Vec::new(),
    }
}

/// Waits until exactly one operator watch on the scenario's ConfigMaps is open (the killed
/// or replaced ones are gone).
async fn wait_one_open_watch(env: &Env, namespace: &str) -> Result<(), Box<dyn std::error::Error>> {
    let Some(emu) = env.emulator() else {
        return Ok(());
    };
    wait::until(
        "exactly one open ConfigMap watch",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let open = requests::open_watches(&emu.requests(), "configmaps", namespace);
            async move {
                if open == 1 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{open} open watches"))
                }
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_and_restarted_converges_without_duplicate_pools_or_stale_ready()
-> TestResult {
    let mut s = Scenario::start("killrestart", "operator-kill-restart", |_| {}).await?;
    let ns = s.ns().to_owned();
    s.operator.kill9()?;
    // While no operator runs: the spec changes and (on the emulator) the kind becomes forbidden.
    // The old Ready=True must not survive the restart.
    s.reapply(|p| p.idle = "4s".into()).await?;
    let forbidden = s.add_fault(
        FaultSpec::new(Fault::Auth {})
            .resource("configmaps")
            .namespace(&ns)
            .verbs(&["list", "watch"]),
    );
    s.writer.churn().await;
    let restarted = Instant::now();
    let mut options = s.env.operator_options();
    options.pod_name = "watchpool-operator-1".into();
    s.operator = s.env.start_operator(&options).await?;
    if forbidden.is_some() {
        let (p, took) = judge::wait_state(
            &s.env,
            POLICY,
            &ns,
            TargetState::Forbidden,
            Duration::from_secs(15),
        )
        .await?;
        s.figures.ms("detect_ms", took);
        assert!(
            !policy::is_ready(&p),
            "no stale Ready=True after the restart: {}",
            policy::summary(&p)
        );
        assert_eq!(
            p.status.as_ref().and_then(|st| st.observed_generation),
            p.metadata.generation
        );
        s.clear_faults();
    }
    let cleared = Instant::now();
    let (p, took) = s
        .env
        .wait_policy(
            POLICY,
            "Ready=True for the new generation",
            Duration::from_secs(20),
            policy::is_ready,
        )
        .await?;
    s.figures
        .ms("recover_ms", took)
        .ms("restart_to_ready_ms", restarted.elapsed());
    assert_eq!(
        p.status.as_ref().and_then(|st| st.observed_generation),
        p.metadata.generation
    );
    judge::wait_cache_matches(&s.env, &s.operator, POLICY, &ns, Duration::from_secs(10)).await?;
    assert_eq!(
        pools_of(&s.operator).await,
        vec![format!("{ns}/{POLICY}")],
        "one pool for the policy"
    );
    wait_one_open_watch(&s.env, &ns).await?;
    let _ = cleared;
    s.figures.print();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_standby_takes_over_within_lease_duration() -> TestResult {
    let env = Env::start("leader").await?;
    let ns = env.namespace.clone();
    let lease = Duration::from_secs(3);
    let options = |name: &str| OperatorOptions {
        leader_election: true,
        lease_name: Some("e2e-leader".into()),
        lease_duration: Some("3s".into()),
        pod_name: name.into(),
        ..env.operator_options()
    };
    let a = env.start_operator(&options("replica-a")).await?;
    let b = env.start_operator(&options("replica-b")).await?;
    let policy = TestPolicy::configmaps(POLICY, &ns);
    let mut writer = env.writer("cm");
    writer.create_many(3).await;
    env.apply_policy(&policy).await?;
    env.wait_ready(POLICY, Duration::from_secs(20)).await?;
    let mut figures = Figures::new("operator-leader");
    // Exactly one replica runs the pool, checked several times.
    let mut leader = None;
    for _ in 0..5 {
        let (pa, pb) = (pools_of(&a).await, pools_of(&b).await);
        assert!(
            pa.is_empty() || pb.is_empty(),
            "two pools for the same policy: {pa:?} {pb:?}"
        );
        if !pa.is_empty() {
            leader = Some('a');
        } else if !pb.is_empty() {
            leader = Some('b');
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader = leader.expect("one replica leads and runs the pool");
    let (mut dead, standby) = if leader == 'a' { (a, b) } else { (b, a) };
    let metrics = standby.metrics().await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("watchpool_leader") && l.trim_end().ends_with(" 0")),
        "the standby reports watchpool_leader 0"
    );
    dead.kill9()?;
    let killed = Instant::now();
    let (_, took) = wait::until(
        "the standby runs the pool",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let p = pools_of(&standby).await;
            if p.is_empty() {
                Poll::Pending("no pool yet".into())
            } else {
                Poll::Ready(())
            }
        },
    )
    .await?;
    figures.ms("takeover_ms", took);
    // The lease expires `lease` after its last renewal; the standby's retry period adds at most
    // about one more lease period.
    assert!(
        took <= lease * 2 + Duration::from_secs(1),
        "took over within the lease duration: {took:?}"
    );
    judge::wait_cache_matches(&env, &standby, POLICY, &ns, Duration::from_secs(10)).await?;
    // The new leader writes status: the object count follows the writer.
    writer.churn().await;
    let (fresh, _) = env.fresh_configmaps(&ns).await?;
    let (_, status_took) = env
        .wait_policy(
            POLICY,
            "status objects follow the writer",
            Duration::from_secs(15),
            |p: &WatchPolicy| {
                p.status
                    .as_ref()
                    .is_some_and(|st| st.objects == fresh as i64)
                    && policy::is_ready(p)
            },
        )
        .await?;
    figures
        .ms("recover_ms", killed.elapsed())
        .ms("status_after_takeover_ms", status_took);
    wait_one_open_watch(&env, &ns).await?;
    figures.print();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_23_operator_own_policy_watch_cut_and_emptied_never_spins() -> TestResult {
    let mut s = Scenario::start("row23", "23", |_| {}).await?;
    if s.skip_without_emulator() {
        return Ok(());
    }
    let cpu = CpuWindow::start(&s.operator)?;
    let since = requests::now_ms();
    // The operator's own WatchPolicy watch: cut, then every re-watch ends at once, empty.
    s.add_fault(
        FaultSpec::new(Fault::EmptyWatch {})
            .resource("watchpolicies")
            .verbs(&["watch"]),
    );
    s.add_fault(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("watchpolicies")
            .count(10),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (pct, used) = cpu.pct(&s.operator)?;
    s.figures.pct("cpu_pct", pct).ms("cpu_ms", used);
    let own: Vec<_> = s
        .env
        .emulator()
        .map(|e| e.requests())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.resource == "watchpolicies" && (r.verb == "watch" || r.verb == "list"))
        .filter(|r| {
            !r.user_agent.starts_with("kubectl")
                && !r.user_agent.starts_with(requests::HARNESS_USER_AGENT)
        })
        .filter(|r| {
            r.time
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| t.as_millisecond() >= since)
        })
        .collect();
    s.figures.set("requests", own.len());
    assert!(
        pct < MAX_CPU_PCT,
        "no spin while the operator's own watch is empty: {pct:.1} %"
    );
    assert!(
        own.len() <= 40,
        "the operator's own watch backs off: {} requests in 6 s",
        own.len()
    );
    s.clear_faults();
    // Its watch works again: a change of the policy is seen.
    let cleared = Instant::now();
    s.reapply(|p| p.idle = "4s".into()).await?;
    let (_, took) = s
        .env
        .wait_policy(
            POLICY,
            "the change observed",
            Duration::from_secs(20),
            policy::is_ready,
        )
        .await?;
    s.figures.ms("recover_ms", took);
    s.expect_recovery(cleared, Duration::from_secs(10)).await?;
    Ok(s.finish().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_24_policy_changed_fifty_times_then_deleted_leaves_nothing_and_shutdown_is_prompt()
-> TestResult {
    let mut s = Scenario::start("row24", "24", |_| {}).await?;
    let ns = s.ns().to_owned();
    let api: Api<WatchPolicy> = Api::namespaced(s.env.client.clone(), &ns);
    let start = Instant::now();
    for i in 0..50 {
        // Alternate a change that restarts the target (selector) with one applied in place.
        let patch = if i % 2 == 0 {
            serde_json::json!({"spec": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "labelSelector": "e2e-writer"}]}})
        } else {
            serde_json::json!({"spec": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                "timeouts": {"idle": format!("{}s", 3 + i % 3)}}})
        };
        api.patch(POLICY, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    s.figures.ms("changes_ms", start.elapsed());
    let (p, took) = s
        .env
        .wait_policy(
            POLICY,
            "Ready for the last generation",
            Duration::from_secs(30),
            policy::is_ready,
        )
        .await?;
    s.figures.ms("recover_ms", took);
    assert!(
        p.metadata.generation.unwrap_or(0) >= 51,
        "every change made a generation"
    );
    judge::wait_cache_matches(&s.env, &s.operator, POLICY, &ns, Duration::from_secs(10)).await?;
    wait_one_open_watch(&s.env, &ns).await?;
    let after = judge::wait_no_leak(
        &s.operator,
        &s.baseline,
        LeakSlack::default(),
        Duration::from_secs(15),
    )
    .await?;
    s.figures.set(
        "threads",
        format!("{}->{}", s.baseline.threads, after.threads),
    );
    // Deleted: no pool, no watch.
    s.env
        .kubectl
        .run(&["delete", "wp", POLICY, "-n", &ns, "--timeout=20s"], None)
        .await?;
    judge::wait_no_leak(
        &s.operator,
        &s.idle_baseline,
        LeakSlack::default(),
        Duration::from_secs(15),
    )
    .await?;
    assert!(
        pools_of(&s.operator).await.is_empty(),
        "no pool after the delete"
    );
    if let Some(emu) = s.env.emulator() {
        let (_, _) = wait::until(
            "no open ConfigMap watch",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || {
                let open = requests::open_watches(&emu.requests(), "configmaps", &ns);
                async move {
                    if open == 0 {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(format!("{open} open"))
                    }
                }
            },
        )
        .await?;
    }
    // Shut down: SIGTERM ends it within --shutdown-timeout (5 s).
    let (status, took) = s
        .operator
        .terminate(Duration::from_secs(8))
        .await?
        .expect("exited after SIGTERM");
    s.figures.ms("shutdown_ms", took);
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(
        took <= Duration::from_secs(6),
        "shutdown within the grace period: {took:?}"
    );
    s.figures.print();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_refuses_invalid_flags_at_start_with_a_clear_message() -> TestResult {
    let bin = watchpool_e2e::operator::binary()?;
    let cases: [(&[&str], &str); 3] = [
        (&["run", "--status-interval", "soon"], "status-interval"),
        (&["run", "--log-format", "xml"], "log-format"),
        (&["run", "--admin-addr", "not-an-address"], "admin-addr"),
    ];
    for (args, flag) in cases {
        let out = tokio::process::Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} exits with 2: {stderr}"
        );
        assert!(
            stderr.contains(flag),
            "{args:?}: the message names --{flag}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_own_policy_watch_gone_silent_is_rebuilt_within_30s_and_sees_changes() -> TestResult
{
    let mut s = Scenario::start("ownstall", "operator-own-stall", |_| {}).await?;
    if s.skip_without_emulator() {
        return Ok(());
    }
    // The operator's own WatchPolicy watch goes half-open: open, silent, no bookmarks.
    let stall = s
        .add_fault(
            FaultSpec::new(Fault::StallWatches { secs: None })
                .resource("watchpolicies")
                .count(1),
        )
        .expect("checked above");
    let emu = s.env.emulator().expect("checked above");
    wait::until(
        "the stall reached the open WatchPolicy watch",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let hits = emu
                .faults()
                .list()
                .iter()
                .find(|f| f.id == stall)
                .map_or(0, |f| f.hits);
            async move {
                if hits >= 1 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{hits} hits"))
                }
            }
        },
    )
    .await?;
    let changed = Instant::now();
    s.reapply(|p| p.idle = "4s".into()).await?;
    let took = s.env.wait_ready(POLICY, Duration::from_secs(40)).await?;
    // The operator gives its own watch a 20 s lifetime and rebuilds a silent one within 25 s;
    // add the polling of `kubectl get`.
    assert!(
        took <= Duration::from_secs(30),
        "a silent watch of the operator's own is rebuilt within 30 s: {took:?}"
    );
    s.figures
        .ms("detect_ms", took)
        .ms("recover_ms", changed.elapsed());
    s.figures.print();
    Ok(())
}
