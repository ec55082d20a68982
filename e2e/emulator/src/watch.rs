//! One watch stream (EMULATOR.md §4): initial events or replay, live fan-out with selector
//! transitions, bookmarks, timeout, slow-consumer drop, and the stream faults of §10.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, sleep_until};

use crate::faults::{Fault, FaultId, MAX_LINE, MatchContext, bounded_ms, bounded_secs};
use crate::http::{StreamAbort, StreamItem};
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::store::{Event, EventType, WatchStart, event_line, for_version};
use crate::table::{self, IncludeObject};

/// How event objects are rendered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// Full objects.
    Json,
    /// A one-row `meta.k8s.io/v1` Table per event.
    Table(IncludeObject),
    /// `PartialObjectMetadata`.
    Metadata,
}

/// Everything a watch stream needs.
pub struct WatchTask {
    pub(crate) shared: Arc<Shared>,
    pub(crate) res: Arc<ResourceInfo>,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) user_agent: String,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) format: Format,
    pub(crate) start: WatchStart,
    pub(crate) initial_events_end: bool,
    pub(crate) bookmarks: bool,
    pub(crate) bookmark_interval: Option<Duration>,
    pub(crate) timeout: Duration,
    pub(crate) wait_for_rv: Option<u64>,
    pub(crate) slow_limit: Option<usize>,
    pub(crate) tx: mpsc::Sender<StreamItem>,
    pub(crate) started: std::time::Instant,
    pub(crate) reset: Option<crate::server::ConnReset>,
}

/// Renders an object as a watch event object in the stream's format.
pub fn render_object(res: &ResourceInfo, obj: &Arc<Value>, format: Format) -> Value {
    let obj = for_version(obj, res);
    match format {
        Format::Json => (*obj).clone(),
        Format::Metadata => partial_metadata(&obj),
        Format::Table(include) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            table::table(
                res,
                &[(*obj).clone()],
                include,
                json!({"resourceVersion": rv}),
                SystemTime::now(),
            )
        }
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn bookmark_line(res: &ResourceInfo, rv: u64, initial_end: bool, padding: Option<usize>) -> Bytes {
    let mut md = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    if let Some(n) = padding {
        md["annotations"] = json!({"emulator.watchpool.dev/padding": "x".repeat(n)});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": md}),
    )
}

/// The ERROR event line carrying a Status.
pub fn error_line(code: u16, message: &str) -> Bytes {
    let reason = match code {
        410 => "Expired",
        500 => "InternalError",
        _ => "InternalError",
    };
    event_line(
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

enum End {
    Client,
    Timeout,
    Dropped,
    Reset,
    Closed,
    Error,
    SlowConsumer,
}

impl End {
    fn as_str(&self) -> &'static str {
        match self {
            End::Client => "client",
            End::Timeout => "timeout",
            End::Dropped => "dropped",
            End::Reset => "reset",
            End::Closed => "closed",
            End::Error => "error",
            End::SlowConsumer => "slow_consumer",
        }
    }
}

/// What a stream owes its client before live events.
enum Backlog {
    /// A synthetic ADDED event.
    Initial(Arc<Value>),
    /// The `k8s.io/initial-events-end` bookmark of a WatchList.
    EndBookmark,
    /// A logged event after the requested resourceVersion.
    Replay(Arc<Event>),
}

struct State {
    sent_events: u64,
    processed_rv: u64,
    applied: Vec<FaultId>,
    pending: VecDeque<Bytes>,
    drop_at: Option<(Instant, End)>,
    stalled: bool,
    stall_until: Option<Instant>,
    close_after_pending: bool,
    drip: Option<Duration>,
    endless: bool,
}

impl WatchTask {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn line_for(&self, etype: EventType, ev: Option<&Event>, obj: &Arc<Value>) -> Bytes {
        if self.format == Format::Json
            && let Some(ev) = ev
            && ev.etype == etype
            && obj.get("apiVersion").and_then(Value::as_str)
                == Some(self.res.api_version().as_str())
        {
            return ev.line().clone();
        }
        event_line(etype.as_str(), &render_object(&self.res, obj, self.format))
    }

    /// The line to send for a live or replayed event, if any (selector transitions applied).
    fn filter(&self, ev: &Event) -> Option<Bytes> {
        if self.labels.is_empty() && self.fields.is_empty() {
            return Some(self.line_for(ev.etype, Some(ev), &ev.object));
        }
        let now = self.matches(&ev.object);
        match ev.etype {
            EventType::Added | EventType::Deleted => {
                now.then(|| self.line_for(ev.etype, Some(ev), &ev.object))
            }
            EventType::Modified => {
                let before = ev.old.as_ref().is_none_or(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some(self.line_for(EventType::Modified, Some(ev), &ev.object)),
                    (false, true) => Some(self.line_for(EventType::Added, Some(ev), &ev.object)),
                    (true, false) => Some(self.line_for(EventType::Deleted, Some(ev), &ev.object)),
                    (false, false) => None,
                }
            }
        }
    }

    fn ctx(&self) -> MatchContext<'_> {
        MatchContext {
            verb: "watch",
            group: &self.res.group,
            resource: &self.res.plural,
            namespace: &self.namespace,
            name: &self.name,
            user_agent: &self.user_agent,
        }
    }

    fn check_faults(&mut self, st: &mut State, seq: u64) {
        loop {
            let taken = self
                .shared
                .faults
                .take(&self.ctx(), Fault::is_stream_fault, &st.applied);
            let Some((id, fault)) = taken else { break };
            st.applied.push(id);
            let name = fault.name().to_string();
            self.shared.log.update(seq, |r| r.faults.push(name));
            let now = Instant::now();
            match fault {
                Fault::DropWatches { after_ms } => {
                    st.drop_at = Some((now + bounded_ms(after_ms), End::Dropped))
                }
                Fault::ResetWatches { after_ms } => {
                    st.drop_at = Some((now + bounded_ms(after_ms), End::Reset))
                }
                Fault::CloseWatches { after_ms } => {
                    st.drop_at = Some((now + bounded_ms(after_ms), End::Closed))
                }
                Fault::StallWatches { secs } => {
                    st.stalled = true;
                    st.stall_until = secs.map(|s| now + bounded_secs(s));
                }
                Fault::WatchError { code, close } => {
                    let msg = if code == 410 {
                        format!(
                            "too old resource version: {} ({})",
                            st.processed_rv,
                            self.shared.store.current_rv()
                        )
                    } else {
                        "Internal error occurred: injected watch error".to_string()
                    };
                    st.pending.push_back(error_line(code, &msg));
                    if close {
                        st.close_after_pending = true;
                    }
                }
                Fault::MalformedLine { text } => {
                    let mut t = text.unwrap_or_else(|| "this is not json".to_string());
                    t.push('\n');
                    st.pending.push_back(Bytes::from(t));
                }
                Fault::OversizedLine { bytes, endless } => {
                    if endless {
                        st.endless = true;
                    } else {
                        st.pending.push_back(bookmark_line(
                            &self.res,
                            st.processed_rv,
                            false,
                            Some(bytes.unwrap_or(4 << 20).min(MAX_LINE)),
                        ));
                    }
                }
                Fault::Drip { bytes_per_sec } => {
                    let rate = if bytes_per_sec > 0.0 {
                        bytes_per_sec
                    } else {
                        0.5
                    };
                    st.drip = Some(bounded_secs(1.0 / rate).max(Duration::from_micros(100)));
                }
                _ => {}
            }
        }
    }

    async fn send(&self, line: Bytes) -> bool {
        self.tx.send(Ok(line)).await.is_ok()
    }

    /// Runs the stream until it ends; records how it ended in the request log.
    pub async fn run(mut self, seq: u64) {
        let mut faults_rx = self.shared.faults.subscribe();
        let mut st = State {
            sent_events: 0,
            processed_rv: self.start.start_rv,
            applied: Vec::new(),
            pending: VecDeque::new(),
            drop_at: None,
            stalled: false,
            stall_until: None,
            close_after_pending: false,
            drip: None,
            endless: false,
        };
        let end = self.stream(&mut st, &mut faults_rx, seq).await;
        if matches!(end, End::Dropped | End::Reset) {
            // No terminating chunk; for a reset, an RST rather than a FIN.
            if let (End::Reset, Some(reset)) = (&end, &self.reset) {
                reset.request();
            }
            let _ = self.tx.send(Err(StreamAbort)).await;
        }
        let how = if self.shared.is_shutting_down() && matches!(end, End::Client) {
            "shutdown"
        } else {
            end.as_str()
        };
        self.shared.log.end_watch(
            seq,
            how,
            self.started.elapsed().as_millis() as u64,
            st.sent_events,
        );
    }

    async fn stream(
        &mut self,
        st: &mut State,
        faults_rx: &mut tokio::sync::watch::Receiver<u64>,
        seq: u64,
    ) -> End {
        self.check_faults(st, seq);
        // Initial state (and the WatchList end bookmark) or replay: sent once the stream is not
        // stalled or dripping.
        let mut backlog: VecDeque<Backlog> = std::mem::take(&mut self.start.initial)
            .into_iter()
            .map(Backlog::Initial)
            .chain(self.initial_events_end.then_some(Backlog::EndBookmark))
            .chain(
                std::mem::take(&mut self.start.replay)
                    .into_iter()
                    .map(Backlog::Replay),
            )
            .collect();
        let deadline = Instant::now() + self.timeout;
        let interval = self
            .bookmark_interval
            .unwrap_or(self.shared.config.bookmark_interval)
            .clamp(
                Duration::from_millis(10),
                crate::faults::bounded_ms(u64::MAX),
            );
        let mut next_bookmark = Instant::now() + interval;
        let mut drip_line: Option<(Bytes, usize)> = None;
        let mut next_drip = Instant::now();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            while let Some(line) = st.pending.pop_front() {
                if !self.send(line).await {
                    return End::Client;
                }
                st.sent_events += 1;
            }
            if st.close_after_pending {
                return End::Error;
            }
            if st.endless {
                // An endless line: a valid prefix, then filler, never a newline.
                if !self
                    .send(Bytes::from_static(
                        b"{\"type\":\"MODIFIED\",\"object\":{\"padding\":\"",
                    ))
                    .await
                {
                    return End::Client;
                }
                let filler = Bytes::from(vec![b'x'; 64 * 1024]);
                loop {
                    tokio::select! {
                        _ = self.tx.closed() => return End::Client,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {
                            if !self.send(filler.clone()).await {
                                return End::Client;
                            }
                        }
                    }
                }
            }
            let quiet = st.stalled || st.drip.is_some();
            if !quiet && !backlog.is_empty() {
                while let Some(item) = backlog.pop_front() {
                    let line = match item {
                        Backlog::Initial(obj) => Some(self.line_for(EventType::Added, None, &obj)),
                        Backlog::EndBookmark => {
                            Some(bookmark_line(&self.res, self.start.start_rv, true, None))
                        }
                        Backlog::Replay(ev) => {
                            st.processed_rv = ev.rv;
                            self.filter(&ev)
                        }
                    };
                    if let Some(line) = line {
                        if !self.send(line).await {
                            return End::Client;
                        }
                        st.sent_events += 1;
                    }
                }
                continue;
            }
            let drop_at = st.drop_at.as_ref().map_or(far, |(t, _)| *t);
            let stall_until = st.stall_until.unwrap_or(far);
            tokio::select! {
                biased;
                _ = self.tx.closed() => return End::Client,
                changed = faults_rx.changed() => {
                    if changed.is_ok() {
                        self.check_faults(st, seq);
                    }
                }
                _ = sleep_until(drop_at), if st.drop_at.is_some() => {
                    return st.drop_at.take().map_or(End::Closed, |(_, how)| how);
                }
                _ = sleep_until(stall_until), if st.stalled && st.stall_until.is_some() => {
                    st.stalled = false;
                    st.stall_until = None;
                    next_bookmark = Instant::now() + interval;
                }
                _ = sleep_until(deadline), if !quiet => return End::Timeout,
                _ = sleep_until(next_drip), if st.drip.is_some() && !st.stalled => {
                    let step = st.drip.unwrap_or(Duration::from_secs(2));
                    let (line, pos) = drip_line.take().unwrap_or_else(|| (bookmark_line(&self.res, st.processed_rv, false, None), 0));
                    if !self.send(line.slice(pos..pos + 1)).await {
                        return End::Client;
                    }
                    if pos + 1 < line.len() {
                        drip_line = Some((line, pos + 1));
                    }
                    next_drip = Instant::now() + step;
                }
                _ = sleep_until(next_bookmark), if self.bookmarks && !quiet => {
                    next_bookmark = Instant::now() + interval;
                    let current = self.shared.store.current_rv();
                    let rv = if self.start.rx.is_empty() { st.processed_rv.max(current) } else { st.processed_rv };
                    if self.wait_for_rv.is_none_or(|w| rv >= w) {
                        if !self.send(bookmark_line(&self.res, rv, false, None)).await {
                            return End::Client;
                        }
                        st.sent_events += 1;
                        self.shared.log.update(seq, |r| r.last_bookmark_rv = Some(rv.to_string()));
                    }
                }
                ev = self.start.rx.recv(), if !quiet => {
                    match ev {
                        Ok(ev) => {
                            if let Some(limit) = self.slow_limit
                                && self.start.rx.len() > limit
                            {
                                return End::SlowConsumer;
                            }
                            if ev.rv <= st.processed_rv || self.wait_for_rv.is_some_and(|w| ev.rv <= w) {
                                continue;
                            }
                            st.processed_rv = ev.rv;
                            if let Some(line) = self.filter(&ev) {
                                if !self.send(line).await {
                                    return End::Client;
                                }
                                st.sent_events += 1;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => return End::SlowConsumer,
                        Err(broadcast::error::RecvError::Closed) => return End::Closed,
                    }
                }
            }
        }
    }
}
