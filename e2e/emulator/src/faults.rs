//! Fault injection (EMULATOR.md §10): what a fault does ([`Fault`]), where it applies
//! ([`Scope`]), how often (`count`, `probability`), and the live set of faults.
//!
//! A fault is JSON like `{"type":"http_error","code":500,"verbs":["list"],"resource":"configmaps","count":3}`:
//! the `type` and its parameters, the scope fields and the optional `count`/`probability`, all
//! at the top level.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Longest delay any knob or query parameter can ask for (a year): keeps `Instant + Duration`
/// from overflowing on absurd input.
const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Seconds (possibly fractional, negative or huge) as a bounded duration.
pub fn bounded_secs(secs: f64) -> std::time::Duration {
    if secs.is_nan() || secs <= 0.0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::try_from_secs_f64(secs).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// Milliseconds as a bounded duration.
pub fn bounded_ms(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms).min(MAX_DELAY)
}

/// Largest line the `oversized_line` knob builds (256 MiB).
pub const MAX_LINE: usize = 256 << 20;

/// Identifier of an added fault.
pub type FaultId = u64;

/// How a watch or list treats a resourceVersion newer than the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FutureRvPolicy {
    /// Answer as if it were too old (410 Expired), so clients relist (the default).
    #[default]
    Expire,
    /// Wait until the resourceVersion is reached, like a real API server.
    Wait,
}

/// What becomes of resourceVersions across a `restart` fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartRv {
    /// Counter kept, history lost: older resourceVersions get 410 (a real API server restart).
    #[default]
    Continue,
    /// Counter restarted below its old values (etcd restored from a backup).
    Reset,
    /// Counter leaps ahead by a million.
    Jump,
}

/// How `sendInitialEvents` watches are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchListMode {
    /// Initial events and the end bookmark (the default).
    #[default]
    Full,
    /// 422, so clients fall back to list + watch.
    Reject,
    /// Initial events but never the end bookmark (pathological).
    Ignore,
}

/// Body format of an injected HTTP error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBody {
    /// A `metav1.Status` JSON body (the default).
    #[default]
    Json,
    /// Plain text, as the max-in-flight filter answers 429.
    Text,
}

fn default_true() -> bool {
    true
}

/// What a fault does. Serialized with a `type` tag in snake case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fault {
    /// Abort matching watches (no terminating chunk), open ones and new ones, `after_ms` after
    /// the fault reaches them.
    DropWatches {
        /// Delay before the abort.
        #[serde(default)]
        after_ms: u64,
    },
    /// Abort matching watches with a TCP reset (RST, no terminating chunk), open ones and new
    /// ones, `after_ms` after the fault reaches them.
    ResetWatches {
        /// Delay before the reset.
        #[serde(default)]
        after_ms: u64,
    },
    /// End matching watches cleanly (terminating chunk), as at a timeout.
    CloseWatches {
        /// Delay before the close.
        #[serde(default)]
        after_ms: u64,
    },
    /// Send nothing (no events, no bookmarks) and ignore `timeoutSeconds` for `secs`; without
    /// `secs`, for ever (a half-open connection).
    StallWatches {
        /// Stall length; `None` = for ever.
        #[serde(default)]
        secs: Option<f64>,
    },
    /// Send an ERROR event with a 410 Expired or 500 InternalError Status, then close the
    /// stream (default) or keep it open.
    WatchError {
        /// 410 or 500 (others are sent as given).
        code: u16,
        /// Close the stream after the event.
        #[serde(default = "default_true")]
        close: bool,
    },
    /// Drop event history at once: keep only the last N events, or those above an RV.
    Compact {
        /// Events to keep.
        #[serde(default)]
        keep_last_n: Option<usize>,
        /// Drop events with RV ≤ this.
        #[serde(default)]
        below_rv: Option<u64>,
    },
    /// How watches and lists treat a resourceVersion newer than the current one.
    FutureRvPolicy {
        /// `expire` or `wait`.
        policy: FutureRvPolicy,
    },
    /// Close every connection, stop listening for `down_ms`, then listen again on the same port.
    Restart {
        /// Time without a listener.
        #[serde(default)]
        down_ms: u64,
        /// What happens to resourceVersions.
        #[serde(default)]
        rv: RestartRv,
    },
    /// Answer matching requests with an error Status.
    HttpError {
        /// HTTP code: 429, 500, 503, 504, 409, 410, 403, 401, 404…
        code: u16,
        /// `Retry-After` seconds (and `details.retryAfterSeconds`).
        #[serde(default)]
        retry_after: Option<u64>,
        /// JSON Status or plain text.
        #[serde(default)]
        body: ErrorBody,
        /// Overrides the message; for 504, `"ResourceVersionTooLarge"` gives that cause.
        #[serde(default)]
        message: Option<String>,
    },
    /// Delay matching responses (watches: their headers) by `ms` plus up to `jitter_ms`, or
    /// never send response headers at all.
    Latency {
        /// Fixed delay.
        #[serde(default)]
        ms: u64,
        /// Random extra delay, uniform in `0..=jitter_ms`.
        #[serde(default)]
        jitter_ms: u64,
        /// Withhold the response headers for ever.
        #[serde(default)]
        headers_never: bool,
    },
    /// The next `n` writes to matching objects fail with 409 Conflict.
    ConflictNext {
        /// Number of writes to fail.
        n: u64,
    },
    /// How `sendInitialEvents` watches are served.
    Watchlist {
        /// `full`, `reject` or `ignore`.
        mode: WatchListMode,
    },
    /// Bookmark cadence of matching watches, or no bookmarks at all.
    BookmarkInterval {
        /// Interval in seconds.
        #[serde(default)]
        secs: Option<f64>,
        /// No bookmarks.
        #[serde(default)]
        off: bool,
    },
    /// Per-watch buffer (events queued for a slow consumer) before the watch is closed.
    SlowWatchBuffer {
        /// Events.
        events: usize,
    },
    /// CRDs become Established/NamesAccepted `ms` after their creation.
    CrdEstablishDelay {
        /// Delay.
        ms: u64,
    },
    /// New CRDs get `NamesAccepted=False` (`MultipleNamesNotAllowed`) and are not served.
    CrdNamesConflict {},
    /// Fake workload status for Deployments/ReplicaSets/StatefulSets/DaemonSets/Pods so that
    /// readiness checks pass.
    AutoReady {
        /// Kinds (e.g. `Deployment`); empty = all supported.
        #[serde(default)]
        kinds: Vec<String>,
    },
    /// 403 Forbidden for matching requests (the scope says which verbs/resources).
    Auth {},
    /// A line that is not JSON in matching watch streams.
    MalformedLine {
        /// The line (default `this is not json`).
        #[serde(default)]
        text: Option<String>,
    },
    /// A huge event line, or an endless line without newline.
    OversizedLine {
        /// Size of the line.
        #[serde(default)]
        bytes: Option<usize>,
        /// Never end the line.
        #[serde(default)]
        endless: bool,
    },
    /// Send a partial event line slowly, `bytes_per_sec` (may be < 1).
    Drip {
        /// Rate.
        bytes_per_sec: f64,
    },
    /// Answer a watch with 200 and end it at once, with no event.
    EmptyWatch {},
}

impl Fault {
    /// The snake-case name of the fault (its `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::DropWatches { .. } => "drop_watches",
            Fault::ResetWatches { .. } => "reset_watches",
            Fault::CloseWatches { .. } => "close_watches",
            Fault::StallWatches { .. } => "stall_watches",
            Fault::WatchError { .. } => "watch_error",
            Fault::Compact { .. } => "compact",
            Fault::FutureRvPolicy { .. } => "future_rv_policy",
            Fault::Restart { .. } => "restart",
            Fault::HttpError { .. } => "http_error",
            Fault::Latency { .. } => "latency",
            Fault::ConflictNext { .. } => "conflict_next",
            Fault::Watchlist { .. } => "watchlist",
            Fault::BookmarkInterval { .. } => "bookmark_interval",
            Fault::SlowWatchBuffer { .. } => "slow_watch_buffer",
            Fault::CrdEstablishDelay { .. } => "crd_establish_delay",
            Fault::CrdNamesConflict {} => "crd_names_conflict",
            Fault::AutoReady { .. } => "auto_ready",
            Fault::Auth {} => "auth",
            Fault::MalformedLine { .. } => "malformed_line",
            Fault::OversizedLine { .. } => "oversized_line",
            Fault::Drip { .. } => "drip",
            Fault::EmptyWatch {} => "empty_watch",
        }
    }

    /// True for faults that act on open watch streams.
    pub fn is_stream_fault(&self) -> bool {
        matches!(
            self,
            Fault::DropWatches { .. }
                | Fault::ResetWatches { .. }
                | Fault::CloseWatches { .. }
                | Fault::StallWatches { .. }
                | Fault::WatchError { .. }
                | Fault::MalformedLine { .. }
                | Fault::OversizedLine { .. }
                | Fault::Drip { .. }
        )
    }

    /// True for faults that are carried out once, when added (`compact`, `restart`).
    pub fn is_action(&self) -> bool {
        matches!(self, Fault::Compact { .. } | Fault::Restart { .. })
    }
}

/// Where a fault applies. Every field left empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    /// Verbs: get, list, watch, create, update, patch, delete, deletecollection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// API group (`""` = core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Resource (plural), e.g. `configmaps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Substring of the client's User-Agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// A fault to add: what, where, how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What it does.
    #[serde(flatten)]
    pub fault: Fault,
    /// Where it applies.
    #[serde(flatten)]
    pub scope: Scope,
    /// Apply to the first N matches only (`conflict_next` defaults to its `n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Apply to each match with this probability (0..=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl FaultSpec {
    /// A fault with an empty scope, unlimited count, probability 1.
    pub fn new(fault: Fault) -> Self {
        FaultSpec {
            fault,
            scope: Scope::default(),
            count: None,
            probability: None,
        }
    }

    /// Restricts it to these verbs.
    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.scope.verbs = verbs.iter().map(|v| v.to_string()).collect();
        self
    }

    /// Restricts it to a resource (plural).
    pub fn resource(mut self, resource: &str) -> Self {
        self.scope.resource = Some(resource.to_string());
        self
    }

    /// Restricts it to a namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.scope.namespace = Some(namespace.to_string());
        self
    }

    /// Restricts it to an object name.
    pub fn name(mut self, name: &str) -> Self {
        self.scope.name = Some(name.to_string());
        self
    }

    /// Restricts it to clients whose User-Agent contains this.
    pub fn user_agent(mut self, ua: &str) -> Self {
        self.scope.user_agent = Some(ua.to_string());
        self
    }

    /// Applies to the first `n` matches only.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Applies with this probability.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
}

/// The request a fault is matched against.
#[derive(Clone, Debug, Default)]
pub struct MatchContext<'a> {
    /// Verb of the request.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Resource plural.
    pub resource: &'a str,
    /// Namespace (`""` for cluster scope).
    pub namespace: &'a str,
    /// Object name (`""` for collections).
    pub name: &'a str,
    /// User-Agent.
    pub user_agent: &'a str,
}

impl Scope {
    fn matches(&self, ctx: &MatchContext<'_>, implied_verb: Option<&str>) -> bool {
        let verb_ok = if self.verbs.is_empty() {
            implied_verb.is_none_or(|v| v == ctx.verb)
        } else {
            self.verbs.iter().any(|v| v == ctx.verb)
        };
        verb_ok
            && self.group.as_deref().is_none_or(|g| g == ctx.group)
            && self.resource.as_deref().is_none_or(|r| r == ctx.resource)
            && self.namespace.as_deref().is_none_or(|n| n == ctx.namespace)
            && self.name.as_deref().is_none_or(|n| n == ctx.name)
            && self
                .user_agent
                .as_deref()
                .is_none_or(|u| ctx.user_agent.contains(u))
    }
}

/// A fault in the live set, as listed by `GET /emulator/faults`.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveFault {
    /// Its id.
    pub id: FaultId,
    /// The spec as added.
    pub spec: FaultSpec,
    /// Matches left (`None` = unlimited).
    pub remaining: Option<u64>,
    /// Times it was applied.
    pub hits: u64,
}

#[derive(Default)]
struct Inner {
    next_id: FaultId,
    faults: BTreeMap<FaultId, ActiveFault>,
}

/// The live set of faults, shared by the server and the handles.
pub(crate) struct FaultSet {
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl FaultSet {
    pub(crate) fn new() -> Self {
        FaultSet {
            inner: Mutex::new(Inner::default()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to changes of the set (open watches re-check their faults).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    pub(crate) fn add(&self, spec: FaultSpec) -> FaultId {
        let id = {
            let mut g = self.lock();
            g.next_id += 1;
            let id = g.next_id;
            let remaining = match (&spec.fault, spec.count) {
                (_, Some(c)) => Some(c),
                (Fault::ConflictNext { n }, None) => Some(*n),
                _ => None,
            };
            g.faults.insert(
                id,
                ActiveFault {
                    id,
                    spec,
                    remaining,
                    hits: 0,
                },
            );
            id
        };
        self.notify();
        id
    }

    pub(crate) fn remove(&self, id: FaultId) -> bool {
        let found = self.lock().faults.remove(&id).is_some();
        self.notify();
        found
    }

    pub(crate) fn clear(&self) {
        self.lock().faults.clear();
        self.notify();
    }

    pub(crate) fn contains(&self, id: FaultId) -> bool {
        self.lock().faults.contains_key(&id)
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        self.lock().faults.values().cloned().collect()
    }

    /// Finds the first live fault accepted by `pick` whose scope matches `ctx`, rolls its
    /// probability and consumes one of its count. `implied_verb` is the verb a fault without
    /// verbs is limited to (`watch` for stream faults).
    pub(crate) fn take(
        &self,
        ctx: &MatchContext<'_>,
        pick: impl Fn(&Fault) -> bool,
        skip: &[FaultId],
    ) -> Option<(FaultId, Fault)> {
        let mut g = self.lock();
        for f in g.faults.values_mut() {
            if skip.contains(&f.id) || !pick(&f.spec.fault) || f.remaining == Some(0) {
                continue;
            }
            let implied =
                if f.spec.fault.is_stream_fault() || matches!(f.spec.fault, Fault::EmptyWatch {}) {
                    Some("watch")
                } else {
                    None
                };
            if matches!(f.spec.fault, Fault::ConflictNext { .. })
                && f.spec.scope.verbs.is_empty()
                && !matches!(ctx.verb, "create" | "update" | "patch" | "delete")
            {
                continue;
            }
            if !f.spec.scope.matches(ctx, implied) {
                continue;
            }
            if let Some(p) = f.spec.probability
                && rand::random::<f64>() >= p
            {
                continue;
            }
            if let Some(r) = f.remaining.as_mut() {
                *r -= 1;
            }
            f.hits += 1;
            return Some((f.id, f.spec.fault.clone()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_spec_round_trips_through_flat_json() {
        let v = json!({"type": "http_error", "code": 429, "retry_after": 2, "body": "text",
                       "verbs": ["list"], "resource": "configmaps", "count": 3});
        let spec: FaultSpec = serde_json::from_value(v).unwrap();
        assert_eq!(
            spec.fault,
            Fault::HttpError {
                code: 429,
                retry_after: Some(2),
                body: ErrorBody::Text,
                message: None
            }
        );
        assert_eq!(spec.scope.verbs, vec!["list"]);
        assert_eq!(spec.count, Some(3));
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["type"], "http_error");
        assert_eq!(back["resource"], "configmaps");
    }

    #[test]
    fn take_consumes_counts_and_respects_scope() {
        let set = FaultSet::new();
        set.add(
            FaultSpec::new(Fault::HttpError {
                code: 500,
                retry_after: None,
                body: ErrorBody::Json,
                message: None,
            })
            .verbs(&["list"])
            .resource("pods")
            .count(2),
        );
        let ctx = MatchContext {
            verb: "list",
            resource: "pods",
            ..Default::default()
        };
        let other = MatchContext {
            verb: "list",
            resource: "secrets",
            ..Default::default()
        };
        let any = |f: &Fault| matches!(f, Fault::HttpError { .. });
        assert!(set.take(&other, any, &[]).is_none());
        assert!(set.take(&ctx, any, &[]).is_some());
        assert!(set.take(&ctx, any, &[]).is_some());
        assert!(set.take(&ctx, any, &[]).is_none());
        assert_eq!(set.list()[0].hits, 2);
    }

    #[test]
    fn stream_faults_without_verbs_only_match_watches() {
        let set = FaultSet::new();
        set.add(FaultSpec::new(Fault::DropWatches { after_ms: 0 }));
        let list = MatchContext {
            verb: "list",
            ..Default::default()
        };
        let watch = MatchContext {
            verb: "watch",
            ..Default::default()
        };
        let any = |_: &Fault| true;
        assert!(set.take(&list, any, &[]).is_none());
        assert!(set.take(&watch, any, &[]).is_some());
    }
}
