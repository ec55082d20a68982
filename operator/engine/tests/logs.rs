//! Quiet logs: a sustained fault logs once per state change, not once per attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube_emulator::{Fault, FaultSpec};
use support::emu::{self, *};
use support::*;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use watchpool_api::TargetState;
use watchpool_engine::Pool;

static WARNINGS: AtomicUsize = AtomicUsize::new(0);
static DEBUGS: AtomicUsize = AtomicUsize::new(0);

/// Counts the engine's log events by level.
struct Counting;

impl Subscriber for Counting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("watchpool_engine")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        match *event.metadata().level() {
            Level::WARN | Level::ERROR => WARNINGS.fetch_add(1, Ordering::Relaxed),
            _ => DEBUGS.fetch_add(1, Ordering::Relaxed),
        };
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_forbidden_logs_one_warning_not_one_per_attempt() {
    tracing::subscriber::set_global_default(Counting).unwrap();
    let emu = emu::start().await;
    emu::create_configmaps(&emu, "default", 2);
    let target = configmaps("default");
    let key = key(&target, Some("default"));
    let pool = Pool::spawn(
        client(&emu.url()).await,
        pool_id("logs"),
        policy(vec![target]),
        Default::default(),
    );
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(5)).await;
    let warnings_before = WARNINGS.load(Ordering::Relaxed);
    let debugs_before = DEBUGS.load(Ordering::Relaxed);
    let rbac = emu.faults().add(
        FaultSpec::new(Fault::Auth {})
            .verbs(&["list", "watch"])
            .resource("configmaps"),
    );
    emu.faults().add(
        FaultSpec::new(Fault::DropWatches { after_ms: 0 })
            .resource("configmaps")
            .count(1),
    );
    wait_state(&pool, &key, TargetState::Forbidden, Duration::from_secs(5)).await;
    // Four seconds of the fault: enough refused attempts to tell one warning per state change
    // from one per attempt.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = resource_requests(&emu, "configmaps")
        .iter()
        .filter(|r| r.status == 403)
        .count();
    emu.faults().remove(rbac);
    wait_state(&pool, &key, TargetState::Watching, Duration::from_secs(3)).await;
    let warnings = WARNINGS.load(Ordering::Relaxed) - warnings_before;
    eprintln!("{attempts} refused attempts, {warnings} warnings");
    assert!(attempts >= 5, "only {attempts} attempts");
    // The reset that started it (one Backoff) and the Forbidden state: two state changes.
    assert!(warnings <= 2, "{warnings} warnings for {attempts} attempts");
    let debugs = DEBUGS.load(Ordering::Relaxed) - debugs_before;
    assert!(
        debugs >= attempts - 2,
        "each further attempt is logged at debug"
    );
    pool.shutdown().await;
    emu.shutdown().await;
}
