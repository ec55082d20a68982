//! Issue 7 §6, recovery and detection, read from the emulator's request log:
//! - reset → resumed watch: the time from the abort of a watch connection to the next watch
//!   request of that namespace, and whether a list came in between;
//! - silent stream: the time from the stall of a watch (no byte, no FIN) until the side notices
//!   (watchpool: its watch enters `Stalled`; both: its next watch request);
//! - relist after a 410 ERROR event on a namespace of `objects` ConfigMaps: the time to the
//!   first list request and to the resumed watch, and the list requests (pages) it took.

use std::time::{Duration, Instant};

use kube_emulator::{Emulator, EmulatorConfig, Fault, FaultSpec};

use crate::BenchError;
use crate::child::{ChildSpec, Knobs, ObjectKind, Side};
use crate::driver::{Bench, ChildProc, last_seq, now_ms, record_ms, requests_in, start_emulator};
use crate::objects;
use crate::report::{Section, Table, f, met, times};
use crate::scenarios::{median, wait_fault_hits};

/// Settings of the recovery benchmark.
#[derive(Clone, Debug)]
pub struct RecoveryOpts {
    /// Resets measured per side.
    pub samples: usize,
    /// `timeouts.idle` of the pool for the silent-stream measurement.
    pub idle: Duration,
    /// How long to wait for the peer to notice a silent stream.
    pub peer_cap: Duration,
    /// Objects in the namespace that gets the 410.
    pub objects: usize,
}

/// Figures of one side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideRecovery {
    /// Milliseconds from each reset to the next watch request.
    pub reset_ms: Vec<f64>,
    /// Lists issued between a reset and the resumed watch, all samples together.
    pub reset_lists: u64,
    /// Seconds until the silent stream was noticed (watchpool: `Stalled`), if it was.
    pub stall_detect_s: Option<f64>,
    /// Seconds until the next watch request after the stall, if within the cap.
    pub stall_rewatch_s: Option<f64>,
    /// Seconds from the 410 to the first list request.
    pub gone_to_list_s: Option<f64>,
    /// Seconds from the 410 to the resumed watch.
    pub gone_to_watch_s: Option<f64>,
    /// List requests (pages) between the 410 and the resumed watch.
    pub gone_lists: u64,
}

/// Figures of both sides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryResult {
    /// watchpool.
    pub pool: SideRecovery,
    /// Peer.
    pub peer: SideRecovery,
}

fn knobs(opts: &RecoveryOpts) -> Knobs {
    Knobs {
        idle_ms: u64::try_from(opts.idle.as_millis()).unwrap_or(u64::MAX),
        reset_after_ms: 2_000,
        ..Knobs::default()
    }
}

async fn spawn_on(
    bench: &Bench,
    emu: &Emulator,
    side: Side,
    ns: &str,
    objects_n: usize,
    knobs: Knobs,
) -> Result<ChildProc, BenchError> {
    objects::populate(emu, ObjectKind::ConfigMap, ns, objects_n, 1024)?;
    let mut spec = ChildSpec::new(side, &emu.url(), ObjectKind::ConfigMap, vec![ns.into()]);
    spec.knobs = knobs;
    let mut child = bench.spawn(&spec).await?;
    child.wait_synced(1, None, Duration::from_secs(120)).await?;
    Ok(child)
}

/// The first watch request in `ns` after `mark`, and the lists before it.
fn next_watch(emu: &Emulator, ns: &str, mark: u64) -> Option<(i64, u64, Option<i64>)> {
    let records = requests_in(emu, ns, mark, None);
    let mut lists = 0;
    let mut first_list = None;
    for r in records.iter().filter(|r| r.namespace == ns) {
        if r.verb == "list" {
            lists += 1;
            first_list = first_list.or_else(|| record_ms(r));
        }
        if r.verb == "watch" {
            return record_ms(r).map(|t| (t, lists, first_list));
        }
    }
    None
}

/// Polls the log until `ns` has a watch request after `mark`, or `timeout` passes.
async fn wait_next_watch(
    emu: &Emulator,
    ns: &str,
    mark: u64,
    timeout: Duration,
) -> Option<(i64, u64, Option<i64>)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = next_watch(emu, ns, mark) {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The end time (ms) of the watch in `ns` that was dropped after `mark`.
fn dropped_end(emu: &Emulator, ns: &str, mark: u64) -> Option<i64> {
    emu.requests()
        .into_iter()
        .filter(|r| r.seq <= mark && r.namespace == ns && r.watch)
        .filter(|r| r.watch_end.as_deref() == Some("dropped"))
        .filter_map(|r| record_ms(&r).map(|t| (r.seq, t + r.duration_ms as i64)))
        .filter(|(_, end)| *end > 0)
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, end)| end)
}

/// Runs the benchmark.
pub async fn run(bench: &Bench, opts: &RecoveryOpts) -> Result<RecoveryResult, BenchError> {
    let emu = start_emulator(EmulatorConfig {
        bookmark_interval: Duration::from_secs(1),
        ..crate::driver::emulator_config(100_000, 20_000)
    })
    .await?;
    let k = knobs(opts);
    let mut result = RecoveryResult::default();
    let namespaces = ["rc-pool", "rc-peer"];
    let mut pool = spawn_on(bench, &emu, Side::Pool, "rc-pool", 50, k).await?;
    let peer = spawn_on(bench, &emu, Side::Peer, "rc-peer", 50, k).await?;

    // Resets.
    for sample in 0..opts.samples {
        // Longer than the pool's resetAfter (2 s): every reset meets a healthy watch.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mark = last_seq(&emu);
        let mut ids = Vec::new();
        for ns in namespaces {
            ids.push(
                emu.faults().add(
                    FaultSpec::new(Fault::DropWatches { after_ms: 0 })
                        .resource("configmaps")
                        .namespace(ns)
                        .count(1),
                ),
            );
        }
        for id in &ids {
            wait_fault_hits(&emu, *id, 1, Duration::from_secs(10)).await?;
        }
        for (ns, side) in namespaces.iter().zip([&mut result.pool, &mut result.peer]) {
            let next = wait_next_watch(&emu, ns, mark, Duration::from_secs(30)).await;
            let end = dropped_end(&emu, ns, mark);
            if let (Some((t, lists, _)), Some(end)) = (next, end) {
                side.reset_ms.push((t - end) as f64);
                side.reset_lists += lists;
            } else {
                eprintln!("recovery: sample {sample} in {ns} not measured");
            }
        }
        for id in ids {
            emu.faults().remove(id);
        }
    }
    eprintln!(
        "recovery resets: pool {:?}, peer {:?}",
        result.pool.reset_ms, result.peer.reset_ms
    );

    // Silent stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mark = last_seq(&emu);
    let t0 = now_ms();
    let started = Instant::now();
    let mut ids = Vec::new();
    for ns in namespaces {
        ids.push(
            emu.faults().add(
                FaultSpec::new(Fault::StallWatches { secs: None })
                    .resource("configmaps")
                    .namespace(ns)
                    .count(1),
            ),
        );
    }
    let cap = opts.idle + Duration::from_secs(10);
    let stalled = pool.wait_state("Stalled", cap).await?;
    if stalled.found {
        result.pool.stall_detect_s = Some(started.elapsed().as_secs_f64());
    }
    let t = |found: Option<(i64, u64, Option<i64>)>| found.map(|(t, _, _)| (t - t0) as f64 / 1e3);
    result.pool.stall_rewatch_s = t(wait_next_watch(&emu, "rc-pool", mark, cap).await);
    let peer_left = opts.peer_cap.saturating_sub(started.elapsed());
    result.peer.stall_rewatch_s = t(wait_next_watch(&emu, "rc-peer", mark, peer_left).await);
    result.peer.stall_detect_s = result.peer.stall_rewatch_s;
    for id in ids {
        emu.faults().remove(id);
    }
    pool.quit().await;
    peer.quit().await;

    // 410 and relist, one side at a time.
    for (side, ns, out) in [
        (Side::Pool, "rl-pool", &mut result.pool),
        (Side::Peer, "rl-peer", &mut result.peer),
    ] {
        let child = spawn_on(bench, &emu, side, ns, opts.objects, k).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mark = last_seq(&emu);
        let t0 = now_ms();
        let id = emu.faults().add(
            FaultSpec::new(Fault::WatchError {
                code: 410,
                close: true,
            })
            .resource("configmaps")
            .namespace(ns)
            .count(1),
        );
        if let Some((t, lists, first_list)) =
            wait_next_watch(&emu, ns, mark, Duration::from_secs(120)).await
        {
            out.gone_to_watch_s = Some((t - t0) as f64 / 1e3);
            out.gone_to_list_s = first_list.map(|l| (l - t0) as f64 / 1e3);
            out.gone_lists = lists;
        }
        emu.faults().remove(id);
        child.quit().await;
    }
    emu.shutdown().await;
    Ok(result)
}

/// The report section.
pub fn section(opts: &RecoveryOpts, r: &RecoveryResult, command: &str) -> Section {
    let k = knobs(opts);
    let initial = k.backoff_initial_ms as f64;
    let mut t = Table::comparison("Recovery and detection");
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    t.row(vec![
        format!("reset → resumed watch, median of {} (ms)", opts.samples),
        f(median(&r.pool.reset_ms), 0),
        f(median(&r.peer.reset_ms), 0),
        times(median(&r.pool.reset_ms), median(&r.peer.reset_ms)),
        format!("≤ backoff.initial + 50 ms = {:.0} ms", initial + 50.0),
        met(!r.pool.reset_ms.is_empty() && max(&r.pool.reset_ms) <= initial + 50.0),
    ]);
    t.row(vec![
        "reset → resumed watch, worst (ms)".into(),
        f(max(&r.pool.reset_ms), 0),
        f(max(&r.peer.reset_ms), 0),
        String::new(),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "lists after the resets (all samples)".into(),
        r.pool.reset_lists.to_string(),
        r.peer.reset_lists.to_string(),
        String::new(),
        "0 (no relist)".into(),
        met(r.pool.reset_lists == 0),
    ]);
    let secs = |x: Option<f64>, cap: Duration| {
        x.map_or_else(
            || format!("not within {} s", cap.as_secs()),
            |s| format!("{s:.1} s"),
        )
    };
    let idle = opts.idle.as_secs_f64();
    t.row(vec![
        format!("silent stream detected (timeouts.idle = {idle:.0} s)"),
        secs(r.pool.stall_detect_s, opts.idle + Duration::from_secs(10)),
        secs(r.peer.stall_detect_s, opts.peer_cap),
        String::new(),
        format!("≤ idle + 1 s = {:.0} s", idle + 1.0),
        met(r.pool.stall_detect_s.is_some_and(|s| s <= idle + 1.0)),
    ]);
    t.row(vec![
        "silent stream → next watch request".into(),
        secs(r.pool.stall_rewatch_s, opts.idle + Duration::from_secs(10)),
        secs(r.peer.stall_rewatch_s, opts.peer_cap),
        String::new(),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        format!("410 → first list request ({} objects)", opts.objects),
        opt_s(r.pool.gone_to_list_s),
        opt_s(r.peer.gone_to_list_s),
        String::new(),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        format!(
            "410 → watch resumed after the relist ({} objects)",
            opts.objects
        ),
        opt_s(r.pool.gone_to_watch_s),
        opt_s(r.peer.gone_to_watch_s),
        times(
            r.pool.gone_to_watch_s.unwrap_or(0.0),
            r.peer.gone_to_watch_s.unwrap_or(0.0),
        ),
        "one relist".into(),
        String::new(),
    ]);
    t.row(vec![
        "list requests (pages of 500) for that relist".into(),
        r.pool.gone_lists.to_string(),
        r.peer.gone_lists.to_string(),
        String::new(),
        format!("{}", opts.objects.div_ceil(500)),
        met(r.pool.gone_lists as usize == opts.objects.div_ceil(500)),
    ]);
    t.note(format!("Times come from the emulator's request log (millisecond resolution): a dropped watch ends at its start plus its lifetime. watchpool: policy defaults except timeouts.idle = {idle:.0} s and resetAfter = 2 s (resets are {} s apart, so each one meets a healthy watch whose backoff starts again from backoff.initial = 800 ms, jittered down by up to 50 %); peer: kube-runtime `watcher()` + `default_backoff()` (800 ms, jittered, reset after 120 s). The emulator sends bookmarks every second.", 3));
    t.note(format!("The peer has no idle deadline: a silent stream is noticed only when TCP gives up or the watch's own timeout (290 s in kube-runtime) ends it, so this run waits at most {} s for it.", opts.peer_cap.as_secs()));
    Section {
        id: "recovery".into(),
        tables: vec![t],
        command: command.into(),
    }
}

fn opt_s(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |s| format!("{s:.2} s"))
}
