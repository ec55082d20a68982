//! Issue 7 §3, memory per cached object: RSS growth of each side's process while `objects`
//! objects are created in the namespace it watches (its watch is open and synced on an empty
//! namespace first), divided by the number of objects.
//!
//! watchpool (full and `metadataOnly`) against kube-runtime's `watcher()` feeding a reflector
//! store of `DynamicObject` (a tree of JSON values per object), of the typed k8s-openapi struct,
//! and of `PartialObjectMeta` for metadata only. Each side runs alone, one after the other.

use std::time::Duration;

use kube_emulator::Emulator;

use crate::BenchError;
use crate::child::{ChildSpec, ObjectKind, Side};
use crate::driver::{Bench, emulator_config, settled_rss, start_emulator};
use crate::objects;
use crate::report::{Section, Table, bytes, f, met};

/// Settings of the memory benchmark.
#[derive(Clone, Debug)]
pub struct MemoryOpts {
    /// Objects per measurement.
    pub objects: usize,
    /// Size of each ConfigMap.
    pub size: usize,
    /// Also measure Pods (ConfigMaps are always measured).
    pub pods: bool,
}

impl Default for MemoryOpts {
    fn default() -> Self {
        MemoryOpts {
            objects: 10_000,
            size: 2048,
            pods: true,
        }
    }
}

/// Bytes of RSS per cached object for each variant of one kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindResult {
    /// `ConfigMap` or `Pod`.
    pub kind: String,
    /// Bytes of JSON per object as the emulator sends it.
    pub json_bytes: f64,
    /// watchpool, full objects.
    pub pool_full: f64,
    /// watchpool, metadata only.
    pub pool_meta: f64,
    /// Peer reflector of `DynamicObject`.
    pub peer_dynamic: f64,
    /// Peer reflector of the typed struct.
    pub peer_typed: f64,
    /// Peer reflector of `PartialObjectMeta`.
    pub peer_meta: f64,
}

/// Runs the benchmark.
pub async fn run(bench: &Bench, opts: &MemoryOpts) -> Result<Vec<KindResult>, BenchError> {
    let emu = start_emulator(emulator_config(opts.objects * 2 + 1000, 10_000)).await?;
    let mut kinds = vec![ObjectKind::ConfigMap];
    if opts.pods {
        kinds.push(ObjectKind::Pod);
    }
    let mut results = Vec::new();
    for kind in kinds {
        let sample = objects::object(kind, "mem-sample", "obj-0", opts.size, 0);
        let json_bytes = serde_json::to_vec(&sample).map_or(0, |v| v.len()) as f64;
        let mut r = KindResult {
            kind: kind.name().into(),
            json_bytes,
            ..KindResult::default()
        };
        r.pool_full = growth(bench, &emu, opts, kind, Side::Pool, false, false).await?;
        r.pool_meta = growth(bench, &emu, opts, kind, Side::Pool, true, false).await?;
        r.peer_dynamic = growth(bench, &emu, opts, kind, Side::Peer, false, true).await?;
        r.peer_typed = growth(bench, &emu, opts, kind, Side::Peer, false, false).await?;
        r.peer_meta = growth(bench, &emu, opts, kind, Side::Peer, true, false).await?;
        eprintln!("memory {r:?}");
        results.push(r);
    }
    emu.shutdown().await;
    Ok(results)
}

async fn growth(
    bench: &Bench,
    emu: &Emulator,
    opts: &MemoryOpts,
    kind: ObjectKind,
    side: Side,
    metadata_only: bool,
    dynamic: bool,
) -> Result<f64, BenchError> {
    let ns = format!(
        "mem-{}-{:?}-{}-{}",
        kind.plural(),
        side,
        if metadata_only { "meta" } else { "full" },
        if dynamic { "dyn" } else { "typed" }
    )
    .to_lowercase();
    objects::namespace(emu, &ns)?;
    let mut spec = ChildSpec::new(side, &emu.url(), kind, vec![ns.clone()]);
    spec.metadata_only = metadata_only;
    spec.dynamic = dynamic;
    spec.store = true;
    let mut child = bench.spawn(&spec).await?;
    child.wait_synced(1, None, Duration::from_secs(60)).await?;
    let before = settled_rss(child.pid).await;
    objects::populate(emu, kind, &ns, opts.objects, opts.size)?;
    let n = opts.objects as u64;
    child
        .wait_synced(1, Some(n), Duration::from_secs(300))
        .await?;
    let after = settled_rss(child.pid).await;
    child.quit().await;
    Ok((after as f64 - before as f64) / opts.objects as f64)
}

/// The report section.
pub fn section(opts: &MemoryOpts, results: &[KindResult], command: &str) -> Section {
    let mut full = Table::new(
        &format!(
            "Memory per cached object: {} objects, full objects",
            opts.objects
        ),
        &[
            "kind (JSON size)",
            "watchpool",
            "peer reflector DynamicObject",
            "ratio",
            "peer reflector typed",
            "ratio",
            "target",
            "met",
        ],
    );
    let mut meta = Table::new(
        &format!(
            "Memory per cached object: {} objects, metadataOnly",
            opts.objects
        ),
        &[
            "kind",
            "watchpool full",
            "watchpool metadataOnly",
            "full / metadataOnly",
            "peer reflector PartialObjectMeta",
            "ratio",
            "target",
            "met",
        ],
    );
    for r in results {
        let vs_dyn = r.pool_full / r.peer_dynamic;
        let vs_typed = r.pool_full / r.peer_typed;
        full.row(vec![
            format!("{} ({} B)", r.kind, f(r.json_bytes, 0)),
            bytes(r.pool_full),
            bytes(r.peer_dynamic),
            format!("{vs_dyn:.2}×"),
            bytes(r.peer_typed),
            format!("{vs_typed:.2}×"),
            "≤ 0.5×".into(),
            met(vs_dyn <= 0.5),
        ]);
        let less = r.pool_full / r.pool_meta;
        meta.row(vec![
            r.kind.clone(),
            bytes(r.pool_full),
            bytes(r.pool_meta),
            format!("{less:.1}× less"),
            bytes(r.peer_meta),
            format!("{:.2}×", r.pool_meta / r.peer_meta),
            "≥ 5× less".into(),
            met(less >= 5.0),
        ]);
    }
    let how = "RSS growth of the side's own process (VmRSS, settled) from an open, synced watch on an empty namespace to the same watch holding every object, created one by one in the emulator, divided by the number of objects; each variant alone in its own process.";
    full.note(how);
    full.note("The target is stated against the reflector of `DynamicObject` (a tree of JSON values per object); the typed k8s-openapi struct is shown too.");
    meta.note(how);
    Section {
        id: "memory".into(),
        tables: vec![full, meta],
        command: command.into(),
    }
}
