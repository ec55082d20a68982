//! The cheap subset of the benchmarks that CI runs: each compares watchpool with the peer
//! (kube-runtime's watcher) in the same run, against the same emulator, and fails only on a
//! gross regression measured as a ratio between the two, never on an absolute time. It runs
//! under the debug test profile, so the bounds are generous.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed setup should fail loudly

use std::path::PathBuf;
use std::time::Duration;

use watchpool_bench::driver::Bench;
use watchpool_bench::scenarios::{faults, memory, throughput};

fn bench() -> Bench {
    Bench {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_watchpool-bench")),
    }
}

/// Events per CPU second rather than per wall second: CI machines are shared, and CPU time of
/// each side's own process does not depend on what else runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_processes_a_burst_with_at_most_twice_the_peers_cpu_per_event() {
    let opts = throughput::ThroughputOpts {
        events: 3000,
        objects: 100,
        size: 2048,
        rounds: 1,
    };
    let results = throughput::run(&bench(), &opts).await.unwrap();
    assert_eq!(results.len(), 2, "full and metadataOnly measured");
    for r in &results {
        assert!(r.pool_cpu_us > 0.0 && r.peer_cpu_us > 0.0, "{r:?}");
        assert!(
            r.cpu_ratio() >= 0.5,
            "{}: watchpool needs more than twice the peer's CPU per event: {r:?}",
            r.case
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_caches_an_object_in_less_memory_than_a_reflector() {
    let opts = memory::MemoryOpts {
        objects: 2000,
        size: 2048,
        pods: false,
    };
    let results = memory::run(&bench(), &opts).await.unwrap();
    let r = results.first().unwrap();
    assert!(r.peer_dynamic > 0.0, "the reflector grew: {r:?}");
    assert!(
        r.pool_full <= r.peer_dynamic,
        "watchpool needs more memory per object than a DynamicObject reflector: {r:?}"
    );
    assert!(
        r.pool_meta < r.pool_full,
        "metadataOnly is not smaller than full: {r:?}"
    );
}

/// A spin or a missing backoff would show as many times the peer's requests; in the first
/// seconds of an outage both sides back off alike, so the bound leaves room for jitter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_requests_during_an_outage_stay_within_twice_the_peers() {
    let opts = faults::FaultOpts {
        watches: 5,
        duration: Duration::from_secs(10),
        objects: 3,
        split_targets: false,
    };
    let r = faults::outage(&bench(), &opts).await.unwrap();
    assert!(r.peer_total > 0.0, "the peer retried at all: {r:?}");
    assert!(r.pool_total > 0.0, "the pool retried at all: {r:?}");
    assert!(
        r.pool_total <= r.peer_total * 2.0 + 1.0,
        "watchpool sent more than twice the peer's requests per watch: {r:?}"
    );
    assert!(
        r.pool_recovery_s.is_some(),
        "every pool watch is open again after the outage: {r:?}"
    );
}
