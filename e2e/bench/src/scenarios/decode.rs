//! The profile behind the throughput figures: the per-event CPU of the two steps where
//! callgrind finds most of a pool's instructions (splitting the body into lines, decoding a
//! line), measured in-process on the same lines, with the engine's code as it is and with two
//! variants written in this crate:
//!
//! - split lines with the same `memchr` (SIMD) newline search the engine uses, without the
//!   engine's line-length limit checks;
//! - read an object's `metadata` with a parse that stops once it has it, instead of a second
//!   pass over the whole object (Kubernetes sends `apiVersion`, `kind`, `metadata` first).
//!
//! kube-runtime's own decode of the same line (`WatchEvent<ConfigMap>`) is shown for scale.
//! CPU is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), best of several repetitions.

use std::borrow::Cow;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use k8s_openapi::api::core::v1::ConfigMap;
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use watchpool_engine::decode::LineDecoder;
use watchpool_engine::event::{WatchEvent, decode_event};

use crate::objects;
use crate::report::{Section, Table, f};

/// Per-event CPU of each variant, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodeResult {
    /// Lines measured.
    pub lines: usize,
    /// Bytes per line.
    pub line_bytes: usize,
    /// The engine's `LineDecoder`.
    pub split_engine: f64,
    /// The same splitting with `memchr`.
    pub split_memchr: f64,
    /// The engine's `decode_event`.
    pub decode_engine: f64,
    /// Envelope pass plus a metadata parse that stops early.
    pub decode_one_pass: f64,
    /// kube's typed `WatchEvent<ConfigMap>`.
    pub decode_kube: f64,
}

/// Watch lines as the emulator writes them for 2 KiB ConfigMaps.
fn lines(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut obj = objects::config_map("bench", &format!("obj-{}", i % 500), size, i as u64);
            if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                m.insert(
                    "uid".into(),
                    format!("0b6c1f6e-5b7e-4a8e-9c1d-{:012}", i % 500).into(),
                );
                m.insert("resourceVersion".into(), (1000 + i).to_string().into());
                m.insert("creationTimestamp".into(), "2026-11-28T10:00:00Z".into());
            }
            serde_json::to_vec(&serde_json::json!({"type": "MODIFIED", "object": obj}))
                .unwrap_or_default()
        })
        .collect()
}

/// Thread CPU time of `f`, best of `reps`, divided by `per`.
fn best_ns(reps: usize, per: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = Duration::MAX;
    let mut sink = 0usize;
    for _ in 0..reps {
        let start = cpu_time::ThreadTime::now();
        sink = sink.wrapping_add(f());
        best = best.min(start.elapsed());
    }
    std::hint::black_box(sink);
    best.as_nanos() as f64 / per.max(1) as f64
}

/// The engine's splitting over 16 KiB chunks (as hyper delivers them).
fn split_engine(chunks: &[Bytes]) -> usize {
    let mut decoder = LineDecoder::new(16 << 20);
    let mut n = 0;
    for chunk in chunks {
        decoder.push(chunk.clone());
        while let Ok(Some(line)) = decoder.next_line() {
            n += line.len();
        }
    }
    n
}

/// The same `memchr` newline search as the engine, without its line-length limit checks.
fn split_memchr(chunks: &[Bytes]) -> usize {
    let mut buf = BytesMut::new();
    let mut scanned = 0;
    let mut n = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match memchr::memchr(b'\n', buf.get(scanned..).unwrap_or_default()) {
                Some(offset) => {
                    let end = scanned + offset;
                    let mut line = buf.split_to(end + 1);
                    scanned = 0;
                    line.truncate(end);
                    n += line.freeze().len();
                }
                None => {
                    scanned = buf.len();
                    break;
                }
            }
        }
    }
    n
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "resourceVersion")]
    resource_version: Option<Cow<'a, str>>,
}

const STOP: &str = "metadata found";

/// Reads the keys of an object until `metadata`, keeps its raw JSON, and stops.
struct HeadVisitor<'a, 'b>(&'b mut Option<&'a RawValue>);

impl<'de: 'a, 'a> Visitor<'de> for HeadVisitor<'a, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "metadata" {
                *self.0 = Some(map.next_value::<&'de RawValue>()?);
                return Err(de::Error::custom(STOP));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// The envelope pass, then the metadata without a second pass over the whole object.
fn decode_one_pass(line: &[u8]) -> Option<(usize, Bytes)> {
    let envelope: Envelope<'_> = serde_json::from_slice(line).ok()?;
    let mut slot = None;
    let mut de = serde_json::Deserializer::from_str(envelope.object.get());
    let _ = (&mut de).deserialize_map(HeadVisitor(&mut slot));
    let meta: Meta<'_> = serde_json::from_str(slot?.get()).ok()?;
    let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name);
    let uid: Box<str> = meta.uid.as_deref().unwrap_or("").into();
    let rv: Box<str> = meta.resource_version.as_deref().unwrap_or("").into();
    let raw = Bytes::copy_from_slice(envelope.object.get().as_bytes());
    Some((key.len() + uid.len() + rv.len() + envelope.kind.len(), raw))
}

/// Runs the measurement on `n` lines.
pub fn run(n: usize) -> DecodeResult {
    let lines = lines(n, 2048);
    let line_bytes = lines.first().map_or(0, Vec::len);
    let mut stream = Vec::new();
    for l in &lines {
        stream.extend_from_slice(l);
        stream.push(b'\n');
    }
    let chunks: Vec<Bytes> = stream
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let reps = 7;
    let split_engine = best_ns(reps, n, || split_engine(&chunks));
    let split_memchr = best_ns(reps, n, || split_memchr(&chunks));
    let decode_engine = best_ns(reps, n, || {
        lines
            .iter()
            .filter(|l| matches!(decode_event(l, false), Ok(WatchEvent::Upsert { .. })))
            .count()
    });
    let decode_one_pass = best_ns(reps, n, || {
        lines
            .iter()
            .filter_map(|l| decode_one_pass(l))
            .map(|(k, raw)| k + raw.len())
            .sum()
    });
    let decode_kube = best_ns(reps, n, || {
        lines
            .iter()
            .filter(|l| serde_json::from_slice::<kube::core::WatchEvent<ConfigMap>>(l).is_ok())
            .count()
    });
    DecodeResult {
        lines: n,
        line_bytes,
        split_engine,
        split_memchr,
        decode_engine,
        decode_one_pass,
        decode_kube,
    }
}

/// The report section.
pub fn section(r: &DecodeResult, command: &str) -> Section {
    let mut t = Table::new(
        &format!(
            "Profile: CPU per event of the two hottest steps, {} lines of {} B",
            r.lines, r.line_bytes
        ),
        &[
            "step",
            "engine now (ns)",
            "proposed (ns)",
            "saved",
            "kube-runtime (ns)",
        ],
    );
    t.row(vec![
        "split the body into lines".into(),
        f(r.split_engine, 0),
        format!("{} (memchr)", f(r.split_memchr, 0)),
        format!("{:.0} %", (1.0 - r.split_memchr / r.split_engine) * 100.0),
        "— (kube's line codec is part of its decode)".into(),
    ]);
    t.row(vec![
        "decode the line (envelope, metadata, raw copy)".into(),
        f(r.decode_engine, 0),
        format!("{} (metadata parse stops early)", f(r.decode_one_pass, 0)),
        format!(
            "{:.0} %",
            (1.0 - r.decode_one_pass / r.decode_engine) * 100.0
        ),
        format!("{} (`WatchEvent<ConfigMap>`)", f(r.decode_kube, 0)),
    ]);
    let now = r.split_engine + r.decode_engine;
    // The proposal kept: memchr; the decode stays as it is unless the variant is faster.
    let proposed = r.split_memchr + r.decode_one_pass.min(r.decode_engine);
    t.row(vec![
        "both (memchr, and the faster decode)".into(),
        f(now, 0),
        f(proposed, 0),
        format!("{:.0} %", (1.0 - proposed / now) * 100.0),
        f(r.decode_kube, 0),
    ]);
    t.note("Thread CPU time, best of 7 repetitions, in the benchmark process (no emulator, no socket): the same lines through the engine's `LineDecoder` and `decode_event` as they are, and through the proposed variants written in the benchmark crate.");
    Section {
        id: "profile".into(),
        tables: vec![t],
        command: command.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_splitters_find_the_same_lines() {
        let lines = lines(50, 2048);
        let mut stream = Vec::new();
        for l in &lines {
            stream.extend_from_slice(l);
            stream.push(b'\n');
        }
        let chunks: Vec<Bytes> = stream.chunks(1000).map(Bytes::copy_from_slice).collect();
        let total: usize = lines.iter().map(Vec::len).sum();
        assert_eq!(split_engine(&chunks), total);
        assert_eq!(split_memchr(&chunks), total);
    }

    #[test]
    fn one_pass_decode_reads_the_same_object() {
        let lines = lines(3, 2048);
        let line = lines.first().map(Vec::as_slice).unwrap_or_default();
        let (_, raw) = decode_one_pass(line).unwrap();
        match decode_event(line, false).unwrap() {
            WatchEvent::Upsert { object, .. } => {
                assert_eq!(object.stored.raw(), &raw[..]);
                assert_eq!(object.meta.name, "obj-0");
            }
            other => panic!("not an upsert: {other:?}"),
        }
    }
}
