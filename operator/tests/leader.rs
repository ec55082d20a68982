//! High availability: two operator processes with leader election; only the leader runs
//! pools; when it is killed with SIGKILL the standby takes over within the lease duration.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests: a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

async fn pools_of(op: &Operator) -> Option<usize> {
    let (code, body) = tokio::time::timeout(Duration::from_secs(2), op.get("/debug/pools"))
        .await
        .ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(
        v["policies"]
            .as_array()?
            .iter()
            .filter(|p| p["phase"] == "Running")
            .count(),
    )
}

async fn leads(op: &Operator) -> bool {
    op.get("/metrics")
        .await
        .1
        .contains("\nwatchpool_leader 1\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_within_the_lease_duration_plus_its_retry_when_the_leader_is_killed()
{
    let c = cluster().await;
    c.policy("default", "ha", configmap_spec());
    let lease = Duration::from_secs(3);
    let flags = ["--leader-election", "--lease-duration", "3s"];
    let a = start_operator(
        &c,
        &flags,
        &[("POD_NAME", "op-a"), ("POD_NAMESPACE", "default")],
    )
    .await;
    wait_for_async("op-a to lead", Duration::from_secs(20), || leads(&a)).await;
    let b = start_operator(
        &c,
        &flags,
        &[("POD_NAME", "op-b"), ("POD_NAMESPACE", "default")],
    )
    .await;
    wait_for_async(
        "op-b to know it stands by",
        Duration::from_secs(20),
        || async { b.get("/readyz").await == (200, "ok (standby)".to_owned()) },
    )
    .await;
    wait_for_async("op-a to run the pool", Duration::from_secs(20), || async {
        pools_of(&a).await == Some(1)
    })
    .await;
    wait_for("Ready=True", Duration::from_secs(20), || {
        c.condition("default", "ha", "Ready")
            .is_some_and(|r| r["status"] == "True")
    })
    .await;

    // For a few lease renewals, only the leader runs a pool.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        assert_eq!(pools_of(&a).await, Some(1), "the leader stopped its pool");
        assert_eq!(pools_of(&b).await, Some(0), "the standby runs a pool");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!leads(&b).await);

    // Kill the leader without a chance to release its lease.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    wait_for_async(
        "op-b to take over",
        lease + Duration::from_secs(5),
        || async { leads(&b).await && pools_of(&b).await == Some(1) },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("standby took over {took:?} after the leader was killed (lease {lease:?})");
    // The killed leader's claim lasts up to one lease duration; the standby then waits up to 1 s
    // (kube-lease-manager's random delay against collisions) before it takes the Lease.
    assert!(
        took <= lease + Duration::from_secs(2),
        "takeover took {took:?} with a {lease:?} lease"
    );
    let holder = c
        .emu
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "watchpool-operator",
        )
        .unwrap();
    assert_eq!(holder["spec"]["holderIdentity"], "op-b");
    // The new leader keeps the status current.
    wait_for(
        "status still Ready under the new leader",
        Duration::from_secs(20),
        || {
            c.condition("default", "ha", "Ready")
                .is_some_and(|r| r["status"] == "True")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_its_pools() {
    let c = cluster().await;
    c.policy("default", "stolen", configmap_spec());
    let a = start_operator(
        &c,
        &["--leader-election", "--lease-duration", "3s"],
        &[("POD_NAME", "op-a"), ("POD_NAMESPACE", "default")],
    )
    .await;
    wait_for_async("op-a to run the pool", Duration::from_secs(20), || async {
        pools_of(&a).await == Some(1)
    })
    .await;
    // Someone else takes the lease (as after a network partition).
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    c.emu
        .patch_merge(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "watchpool-operator",
            serde_json::json!({"spec": {
                "holderIdentity": "intruder",
                "renewTime": until.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "leaseDurationSeconds": 60
            }}),
            false,
        )
        .unwrap();
    let stolen = Instant::now();
    wait_for_async("op-a to stop its pool", Duration::from_secs(8), || async {
        pools_of(&a).await == Some(0) && !leads(&a).await
    })
    .await;
    eprintln!(
        "pools stopped {:?} after the lease was taken",
        stolen.elapsed()
    );
    // And it stays a standby.
    let (code, body) = a.get("/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ok (standby)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_when_its_claim_runs_out_and_resumes_after() {
    use kube_emulator::{ErrorBody, Fault, FaultSpec};
    let c = cluster().await;
    c.policy("default", "cut-off", configmap_spec());
    let lease = Duration::from_secs(3);
    let a = start_operator(
        &c,
        &["--leader-election", "--lease-duration", "3s"],
        &[("POD_NAME", "op-a"), ("POD_NAMESPACE", "default")],
    )
    .await;
    wait_for_async("op-a to run the pool", Duration::from_secs(20), || async {
        pools_of(&a).await == Some(1)
    })
    .await;
    // The Lease becomes unreachable (every request to it fails).
    let fault = c.emu.faults().add(
        FaultSpec::new(Fault::HttpError {
            code: 503,
            retry_after: None,
            body: ErrorBody::Json,
            message: None,
        })
        .resource("leases"),
    );
    let cut = Instant::now();
    wait_for_async(
        "op-a to stop its pool",
        lease + Duration::from_secs(2),
        || async { pools_of(&a).await == Some(0) },
    )
    .await;
    let took = cut.elapsed();
    eprintln!("pools stopped {took:?} after the lease became unreachable");
    assert!(took <= lease, "{took:?}");
    // Once the Lease is reachable again, the replica leads again.
    c.emu.faults().remove(fault);
    wait_for_async("op-a to lead again", Duration::from_secs(20), || async {
        pools_of(&a).await == Some(1) && leads(&a).await
    })
    .await;
}
