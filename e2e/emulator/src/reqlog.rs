//! The request log and counters (`GET /emulator/requests`, `GET /emulator/stats`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Records kept before the oldest are dropped.
const MAX_RECORDS: usize = 200_000;

/// One request as the server saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestRecord {
    /// Sequence number (starts at 1).
    pub seq: u64,
    /// When it arrived, RFC 3339 with milliseconds.
    pub time: String,
    /// HTTP method (`FAULT` for a fault carried out when added, e.g. `restart`).
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection), or
    /// `""` for discovery, OpenAPI and control requests.
    pub verb: String,
    /// API group of the resource.
    pub group: String,
    /// Resource plural (with `/status` for the subresource).
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// HTTP status sent (0 when no headers were ever sent).
    pub status: u16,
    /// Time to the response headers, or for watches the stream's whole life.
    pub duration_ms: u64,
    /// User-Agent header.
    pub user_agent: String,
    /// True for watch requests.
    pub watch: bool,
    /// How a watch ended: `timeout`, `client`, `dropped`, `closed`, `error`, `expired`,
    /// `slow_consumer`, `shutdown`, `empty`; `None` while open or for other requests.
    pub watch_end: Option<String>,
    /// Events (and bookmarks) written to a watch.
    pub events: u64,
    /// Names of the faults injected into this request.
    pub faults: Vec<String>,
    /// resourceVersion of the last bookmark a watch sent (updated while it is open).
    #[serde(default)]
    pub last_bookmark_rv: Option<String>,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests by verb (`""` verbs are counted as `other`).
    pub requests_by_verb: BTreeMap<String, u64>,
    /// Requests by `verb resource` (e.g. `list configmaps`).
    pub requests_by_verb_resource: BTreeMap<String, u64>,
    /// Total requests.
    pub requests_total: u64,
    /// Watches open now.
    pub open_watches: u64,
    /// Watches ever started.
    pub watches_started: u64,
    /// Watch events written, all streams together.
    pub watch_events_sent: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Current global resourceVersion.
    pub resource_version: u64,
    /// Objects stored.
    pub objects: u64,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    records: VecDeque<RequestRecord>,
    stats: Stats,
}

/// The shared log.
#[derive(Default)]
pub(crate) struct RequestLog {
    inner: Mutex<Inner>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a record; returns its sequence number.
    pub(crate) fn push(&self, mut rec: RequestRecord) -> u64 {
        let mut g = self.lock();
        g.next_seq += 1;
        rec.seq = g.next_seq;
        let verb = if rec.verb.is_empty() {
            "other".to_string()
        } else {
            rec.verb.clone()
        };
        *g.stats.requests_by_verb.entry(verb.clone()).or_default() += 1;
        if !rec.resource.is_empty() {
            *g.stats
                .requests_by_verb_resource
                .entry(format!("{verb} {}", rec.resource))
                .or_default() += 1;
        }
        if rec.method != "FAULT" {
            g.stats.requests_total += 1;
        }
        g.stats.faults_injected += rec.faults.len() as u64;
        if rec.watch {
            g.stats.watches_started += 1;
            g.stats.open_watches += 1;
        }
        let seq = rec.seq;
        g.records.push_back(rec);
        if g.records.len() > MAX_RECORDS {
            g.records.pop_front();
        }
        seq
    }

    /// Updates a record in place (if still kept).
    pub(crate) fn update(&self, seq: u64, f: impl FnOnce(&mut RequestRecord)) {
        let mut g = self.lock();
        let Some(first) = g.records.front().map(|r| r.seq) else {
            return;
        };
        if seq < first {
            return;
        }
        let idx = (seq - first) as usize;
        if let Some(r) = g.records.get_mut(idx) {
            let before = r.faults.len();
            f(r);
            let added = r.faults.len().saturating_sub(before) as u64;
            g.stats.faults_injected += added;
        }
    }

    /// Marks a watch ended.
    pub(crate) fn end_watch(&self, seq: u64, how: &str, duration_ms: u64, events: u64) {
        {
            let mut g = self.lock();
            g.stats.open_watches = g.stats.open_watches.saturating_sub(1);
            g.stats.watch_events_sent += events;
        }
        self.update(seq, |r| {
            r.watch_end = Some(how.to_string());
            r.duration_ms = duration_ms;
            r.events = events;
        });
    }

    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.lock().records.iter().cloned().collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }
}
