//! The target watcher: the list/watch state machine of one [`WatchKey`].
//!
//! ```text
//!   resolve kind ──▶ list (paged) ──▶ watch from the list's resourceVersion ──┐
//!        ▲               ▲   ▲                │ clean end of a healthy watch  │
//!        │ 404           │   │ 410, RV too    └──────── re-watch at once ◀────┘
//!        │               │   │ large, resync, several failures in a row
//!        └─── backoff ◀──┴───┴── any failure (one backoff step, then the same step again)
//! ```
//!
//! Every path back to the API server after a failure or an empty watch goes through the
//! target's own [`Backoff`] (whose floor is never zero), and a clean re-watch is paced to at most
//! one per second, so the loop cannot spin whatever the server does.
//!
//! This loop owns every retry of the engine: the client has no retry layer (see
//! [`crate::client`]), so a 429/503/504 is seen here once, counted, reported and retried after
//! this target's backoff (at least `Retry-After` for a 429), never multiplied by a hidden layer.
//!
//! What it cannot see: an API server whose resourceVersions were rewound (etcd restored from a
//! backup) serves a watch from a resourceVersion it has not reached yet without any error, so
//! the cache can go stale silently. Only `timeouts.resync` (a periodic full relist that replaces
//! the cache and drops what vanished) bounds that staleness; leave it off where a rewind cannot
//! happen.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube::core::Request;
use kube::core::params::{ListParams, WatchParams};
use rand::Rng;
use tokio::sync::watch;
use watchpool_api::{BackoffConfig, ErrorReason, LimitsConfig, TargetState, TimeoutsConfig};

use crate::backoff::Backoff;
use crate::cache::{Applied, Cache, ObjectSet, TooManyObjects};
use crate::cpu::CpuMeter;
use crate::crds::CrdSignal;
use crate::decode::{BodyLines, BodyLinesError};
use crate::discovery::{self, ResolvedKind};
use crate::event::{ListPage, WatchEvent, decode_event, decode_object};
use crate::health::{LastError, TargetHealth, WatchKey};
use crate::hub::{Hub, Slot};
use crate::request::{ApiStatus, RequestError, send_bounded, send_headers};

/// Failures of the watch stream in a row after which the target relists.
pub const RELIST_AFTER_FAILURES: u32 = 3;
/// Malformed lines in a row after which the connection is dropped.
pub const MALFORMED_LINES_BEFORE_RECONNECT: u32 = 3;
/// A watch that lived this long (or delivered an event) is healthy: its clean end is not a
/// failure.
pub const HEALTHY_WATCH: Duration = Duration::from_secs(1);
/// Objects asked per list page.
pub const LIST_PAGE_SIZE: u32 = 500;
/// Shortest wait of a `NotFound` target even when a CRD appears at once.
const CRD_WAKE_FLOOR: Duration = Duration::from_millis(250);
/// Largest list page body accepted.
const MAX_LIST_PAGE: usize = 1024 * 1024 * 1024;

/// The parts of a policy a running watcher applies in place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WatchSettings {
    /// `spec.timeouts`.
    pub timeouts: TimeoutsConfig,
    /// `spec.backoff`.
    pub backoff: BackoffConfig,
    /// `spec.limits`.
    pub limits: LimitsConfig,
    /// Bumped by the pool to restart a `Failed` watcher after a policy change.
    pub generation: u64,
}

/// What went wrong, and what to do about it.
#[derive(Debug)]
struct Failure {
    reason: ErrorReason,
    message: String,
    retry_after: Option<Duration>,
    action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Back off, then try the same step again (stream failures count towards a relist).
    Retry,
    /// Back off, then relist from scratch.
    Relist,
    /// Back off, then resolve the kind again and relist.
    Rediscover,
    /// Stop until the policy changes.
    Fail,
}

impl Failure {
    fn new(reason: ErrorReason, message: impl Into<String>, action: Action) -> Self {
        Self {
            reason,
            message: message.into(),
            retry_after: None,
            action,
        }
    }

    fn from_status(status: &ApiStatus) -> Self {
        let reason = status.error_reason();
        let action = match reason {
            ErrorReason::Gone | ErrorReason::ResourceVersionTooLarge => Action::Relist,
            ErrorReason::NotFound => Action::Rediscover,
            _ => Action::Retry,
        };
        Self {
            reason,
            message: format!("{} {}: {}", status.code, status.reason, status.message),
            retry_after: status.retry_after,
            action,
        }
    }

    fn from_request(error: RequestError) -> Self {
        match &error {
            RequestError::Status(status) => Self::from_status(status),
            RequestError::KindNotFound(_) => {
                Self::new(ErrorReason::NotFound, error.to_string(), Action::Rediscover)
            }
            _ => Self::new(error.error_reason(), error.to_string(), Action::Retry),
        }
    }

    fn too_many(error: TooManyObjects) -> Self {
        Self::new(ErrorReason::TooManyObjects, error.to_string(), Action::Fail)
    }

    /// Whether this failure counts towards [`RELIST_AFTER_FAILURES`]: only failures that say
    /// the server's side of this watch may be wrong (empty watches, 5xx, undecodable lines).
    /// Transport failures — a reset, a silent stream, a refused connection, a missed deadline —
    /// resume from the same resourceVersion however often they happen (FAULTS.md rows 3, 4, 5,
    /// 13, 25), and 401/403/429 say nothing about the resourceVersion either.
    fn counts_towards_relist(&self) -> bool {
        matches!(
            self.reason,
            ErrorReason::EmptyWatch
                | ErrorReason::ServerError
                | ErrorReason::DecodeError
                | ErrorReason::Unknown
        )
    }
}

/// Which request the watcher issues next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Resolve,
    List,
    Watch,
}

/// What every watcher of a pool shares.
#[derive(Clone)]
pub struct WatchContext {
    /// The client.
    pub client: kube::Client,
    /// The pool's settings, applied in place.
    pub settings: watch::Receiver<WatchSettings>,
    /// Where health is reported.
    pub hub: Arc<Hub>,
    /// The pool's CPU meter.
    pub meter: Arc<CpuMeter>,
    /// The pool's CRD change signal (wakes `NotFound` targets early).
    pub crds: Option<Arc<CrdSignal>>,
}

impl std::fmt::Debug for WatchContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchContext").finish_non_exhaustive()
    }
}

/// The list/watch loop of one watch. Built by the pool, run as one task.
pub struct Watcher {
    client: kube::Client,
    key: WatchKey,
    cache: Cache,
    settings: watch::Receiver<WatchSettings>,
    hub: Arc<Hub>,
    slot: Arc<Slot>,
    meter: Arc<CpuMeter>,
    crds: Option<Arc<CrdSignal>>,
    backoff: Backoff,
    applied_backoff: BackoffConfig,
    resolved: Option<ResolvedKind>,
    resource_version: String,
    need_list: bool,
    failures_since_list: u32,
    consecutive_failures: u32,
    listed_once: bool,
    watched_once: bool,
    next_resync: Option<Instant>,
    last_logged: Option<(TargetState, ErrorReason)>,
    last_watch_start: Option<Instant>,
    /// Events and bookmarks delivered by the current (or last) watch stream.
    stream_events: u64,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("key", &self.key).finish()
    }
}

/// Identifies a watch in logs (never object contents).
fn describe(key: &WatchKey) -> String {
    format!(
        "{}/{} in {}",
        key.target.api_version,
        key.target.kind,
        key.namespace.as_deref().unwrap_or("<cluster>")
    )
}

impl Watcher {
    /// A watcher of `key` that fills `cache` and reports into `slot` of the context's hub.
    pub fn new(context: WatchContext, key: WatchKey, cache: Cache, slot: Arc<Slot>) -> Self {
        let WatchContext {
            client,
            settings,
            hub,
            meter,
            crds,
        } = context;
        let backoff_config = settings.borrow().backoff;
        Self {
            client,
            key,
            cache,
            settings,
            hub,
            slot,
            meter,
            crds,
            backoff: Backoff::new(&backoff_config),
            applied_backoff: backoff_config,
            resolved: None,
            resource_version: String::new(),
            need_list: true,
            failures_since_list: 0,
            consecutive_failures: 0,
            listed_once: false,
            watched_once: false,
            next_resync: None,
            last_logged: None,
            last_watch_start: None,
            stream_events: 0,
        }
    }

    fn update(&self, f: impl FnOnce(&mut TargetHealth)) {
        self.hub.update(&self.slot, f);
    }

    fn set_state(&self, state: TargetState) {
        self.update(|h| {
            h.state = state;
            if state != TargetState::Watching {
                h.connected_since = None;
            }
        });
    }

    /// Runs until the task is cancelled (dropped) or the pool's settings channel closes.
    pub async fn run(mut self) {
        loop {
            let settings = *self.settings.borrow_and_update();
            if settings.backoff != self.applied_backoff {
                self.backoff.set_config(&settings.backoff);
                self.applied_backoff = settings.backoff;
            }
            let step = if self.resolved.is_none() {
                Step::Resolve
            } else if self.need_list {
                Step::List
            } else {
                Step::Watch
            };
            let result = match step {
                Step::Resolve => self.resolve(&settings).await,
                Step::List => self.list(&settings).await,
                Step::Watch => self.watch(&settings).await,
            };
            if let Err(failure) = result
                && !self.fail(failure, step, &settings).await
            {
                return;
            }
        }
    }

    async fn resolve(&mut self, settings: &WatchSettings) -> Result<(), Failure> {
        self.count_request();
        let resolved = discovery::resolve(&self.client, &self.key, settings.timeouts.request)
            .await
            .map_err(Failure::from_request)?;
        self.resolved = Some(resolved);
        self.need_list = true;
        Ok(())
    }

    fn count_request(&self) {
        self.update(|h| h.counters.requests += 1);
    }

    async fn list(&mut self, settings: &WatchSettings) -> Result<(), Failure> {
        let Some(resolved) = self.resolved.clone() else {
            self.need_list = true;
            return Ok(());
        };
        if self.consecutive_failures == 0 {
            // While retrying after failures the state stays what the failure made it
            // (`Backoff`, `Forbidden`…) instead of flapping with each attempt.
            self.set_state(TargetState::Listing);
        }
        let target = &self.key.target;
        let request = Request::new(resolved.collection_path.as_str());
        let mut objects = ObjectSet::default();
        let mut continue_token: Option<String> = None;
        let mut list_rv: Option<String> = None;
        let mut restarted = false;
        let mut decode_errors = 0u64;
        loop {
            let mut params = ListParams::default().limit(LIST_PAGE_SIZE);
            if let Some(labels) = &target.label_selector {
                params = params.labels(labels);
            }
            if let Some(fields) = &target.field_selector {
                params = params.fields(fields);
            }
            if let Some(token) = &continue_token {
                params = params.continue_token(token);
            }
            let http_request = if target.metadata_only {
                request.list_metadata(&params)
            } else {
                request.list(&params)
            }
            .map_err(|e| Failure::new(ErrorReason::Unknown, e.to_string(), Action::Retry))?;
            self.count_request();
            let body = match send_bounded(
                &self.client,
                http_request,
                settings.timeouts.request,
                MAX_LIST_PAGE,
            )
            .await
            {
                Ok(body) => body,
                Err(RequestError::Status(status))
                    if status.code == 410 && continue_token.is_some() && !restarted =>
                {
                    // The continue token expired: start the list again from scratch, once.
                    restarted = true;
                    objects.clear();
                    continue_token = None;
                    list_rv = None;
                    continue;
                }
                Err(e) => return Err(Failure::from_request(e)),
            };
            self.meter.admit().await;
            let page: ListPage<'_> = serde_json::from_slice(&body).map_err(|e| {
                Failure::new(
                    ErrorReason::DecodeError,
                    format!("list response: {e}"),
                    Action::Retry,
                )
            })?;
            let metadata = page.metadata;
            for item in page.items.unwrap_or_default() {
                match decode_object(item, target.metadata_only) {
                    Ok(object) => {
                        objects.insert(object.stored);
                    }
                    Err(_) => decode_errors += 1,
                }
            }
            if !self.cache.fits(objects.len() as u64) {
                self.cache.clear();
                return Err(Failure::too_many(TooManyObjects {
                    max: settings.limits.max_objects,
                }));
            }
            let (rv, next) = match metadata {
                Some(meta) => (
                    meta.resource_version.map(|rv| rv.into_owned()),
                    meta.continue_token
                        .filter(|t| !t.is_empty())
                        .map(|t| t.into_owned()),
                ),
                None => (None, None),
            };
            if list_rv.is_none() {
                list_rv = rv;
            }
            match next {
                Some(token) => continue_token = Some(token),
                None => break,
            }
        }
        let Some(list_rv) = list_rv.filter(|rv| !rv.is_empty()) else {
            return Err(Failure::new(
                ErrorReason::DecodeError,
                "list response has no resourceVersion",
                Action::Retry,
            ));
        };
        let vanished = match self.cache.replace(objects) {
            Ok(vanished) => vanished,
            Err(e) => {
                self.cache.clear();
                return Err(Failure::too_many(e));
            }
        };
        let relist = self.listed_once;
        self.listed_once = true;
        self.need_list = false;
        self.failures_since_list = 0;
        self.resource_version = list_rv;
        self.next_resync = settings.timeouts.resync.map(|d| Instant::now() + d);
        let objects = self.cache.len();
        let rv = self.resource_version.clone();
        self.update(|h| {
            if relist {
                h.relists += 1;
            }
            h.objects = objects;
            h.resource_version = Some(rv);
            h.counters.deleted += vanished;
            h.counters.decode_errors += decode_errors;
        });
        Ok(())
    }

    async fn watch(&mut self, settings: &WatchSettings) -> Result<(), Failure> {
        if self.next_resync.is_some_and(|at| Instant::now() >= at) {
            self.need_list = true;
            return Ok(());
        }
        let Some(resolved) = self.resolved.clone() else {
            return Ok(());
        };
        let target = &self.key.target;
        let watch_secs = settings.timeouts.watch.as_secs_f64();
        let jittered = watch_secs * rand::rng().random_range(0.9..=1.0);
        let timeout_secs = (jittered.round() as u32).max(1);
        let mut params = WatchParams::default().timeout(timeout_secs);
        if let Some(labels) = &target.label_selector {
            params = params.labels(labels);
        }
        if let Some(fields) = &target.field_selector {
            params = params.fields(fields);
        }
        let request = Request::new(resolved.collection_path.as_str());
        let http_request = if target.metadata_only {
            request.watch_metadata(&params, &self.resource_version)
        } else {
            request.watch(&params, &self.resource_version)
        }
        .map_err(|e| Failure::new(ErrorReason::Unknown, e.to_string(), Action::Retry))?;
        self.count_request();
        let started = Instant::now();
        self.last_watch_start = Some(started);
        let response = send_headers(&self.client, http_request, settings.timeouts.request)
            .await
            .map_err(Failure::from_request)?;
        let reconnect = self.watched_once;
        self.watched_once = true;
        self.update(|h| {
            h.state = TargetState::Watching;
            h.connected_since = Some(SystemTime::now());
            h.next_retry_time = None;
            if reconnect {
                h.reconnects += 1;
            }
        });
        let max_line = usize::try_from(settings.limits.max_event_size).unwrap_or(usize::MAX);
        let mut lines = BodyLines::new(response.into_body(), max_line);
        let result = self.read_stream(&mut lines, settings, started).await;
        // Dropping the body closes the connection: a stream that failed is never reused.
        drop(lines);
        if let Err(failure) = &result
            && failure.reason == ErrorReason::IdleTimeout
        {
            self.set_state(TargetState::Stalled);
        }
        let lived = started.elapsed();
        if let Err(failure) = &result
            && failure.action == Action::Retry
            && (self.stream_events > 0 || lived >= HEALTHY_WATCH)
        {
            self.backoff.record_healthy(lived);
        }
        result
    }

    async fn read_stream(
        &mut self,
        lines: &mut BodyLines<kube::client::Body>,
        settings: &WatchSettings,
        started: Instant,
    ) -> Result<(), Failure> {
        let metadata_only = self.key.target.metadata_only;
        let idle = settings.timeouts.idle;
        self.stream_events = 0;
        let mut malformed_in_row: u32 = 0;
        // The idle deadline is one timer for the whole stream, moved lazily: a line only
        // records when it came, and the timer, when it fires, is set again to the last line plus
        // `idle` unless that moment has passed. A timer per line would be registered and
        // cancelled in the runtime's timer wheel for every event.
        let mut last_line = tokio::time::Instant::now();
        let idle_deadline = tokio::time::sleep(idle);
        tokio::pin!(idle_deadline);
        let resync = sleep_until_opt(self.next_resync);
        tokio::pin!(resync);
        loop {
            let next = tokio::select! {
                biased;
                next = lines.next_line() => next,
                () = &mut idle_deadline => {
                    let deadline = last_line + idle;
                    if deadline > tokio::time::Instant::now() {
                        idle_deadline.as_mut().reset(deadline);
                        continue;
                    }
                    return Err(Failure::new(
                        ErrorReason::IdleTimeout,
                        format!("no event and no bookmark for {idle:?}"),
                        Action::Retry,
                    ));
                }
                () = &mut resync => {
                    self.need_list = true;
                    return Ok(());
                }
            };
            let line = match next {
                Err(e) => return Err(stream_failure(&e)),
                Ok(None) => {
                    let lived = started.elapsed();
                    if self.stream_events > 0 || lived >= HEALTHY_WATCH {
                        self.backoff.record_healthy(lived);
                        self.log_recovered();
                        if lived < HEALTHY_WATCH {
                            // Healthy but short: pace re-watches to one per second.
                            tokio::time::sleep(HEALTHY_WATCH - lived).await;
                        }
                        return Ok(());
                    }
                    return Err(Failure::new(
                        ErrorReason::EmptyWatch,
                        "watch ended at once with no event",
                        Action::Retry,
                    ));
                }
                Ok(Some(line)) => line,
            };
            self.meter.admit().await;
            // After the budget's wait, if any: time held back by the budget is not silence.
            last_line = tokio::time::Instant::now();
            let event = match decode_event(&line, metadata_only) {
                Ok(event) => {
                    malformed_in_row = 0;
                    event
                }
                Err(_) => {
                    malformed_in_row += 1;
                    self.update(|h| h.counters.decode_errors += 1);
                    if malformed_in_row >= MALFORMED_LINES_BEFORE_RECONNECT {
                        return Err(Failure::new(
                            ErrorReason::DecodeError,
                            format!("{malformed_in_row} malformed watch lines in a row"),
                            Action::Retry,
                        ));
                    }
                    continue;
                }
            };
            let now = SystemTime::now();
            match event {
                WatchEvent::Upsert { object, .. } => {
                    set_rv(&mut self.resource_version, object.stored.resource_version());
                    let applied = self.cache.upsert(object.stored).map_err(|e| {
                        self.cache.clear();
                        Failure::too_many(e)
                    })?;
                    let objects = self.cache.len();
                    let rv = &self.resource_version;
                    self.hub.update(&self.slot, |h| {
                        match applied {
                            Applied::Added => h.counters.added += 1,
                            Applied::Modified => h.counters.modified += 1,
                            Applied::Deleted | Applied::Unchanged => {}
                        }
                        h.objects = objects;
                        h.last_event_time = Some(now);
                        h.resource_version.get_or_insert_default().clone_from(rv);
                    });
                }
                WatchEvent::Deleted(meta) => {
                    if let Some(rv) = &meta.resource_version {
                        set_rv(&mut self.resource_version, rv);
                    }
                    self.cache.remove(meta.namespace.as_deref(), &meta.name);
                    let objects = self.cache.len();
                    let rv = &self.resource_version;
                    self.hub.update(&self.slot, |h| {
                        h.counters.deleted += 1;
                        h.objects = objects;
                        h.last_event_time = Some(now);
                        h.resource_version.get_or_insert_default().clone_from(rv);
                    });
                }
                WatchEvent::Bookmark(rv) => {
                    if let Some(rv) = rv {
                        set_rv(&mut self.resource_version, &rv);
                    }
                    let rv = &self.resource_version;
                    self.hub.update(&self.slot, |h| {
                        h.counters.bookmarks += 1;
                        h.last_bookmark_time = Some(now);
                        h.resource_version.get_or_insert_default().clone_from(rv);
                    });
                }
                WatchEvent::Error(status) => return Err(Failure::from_status(&status)),
                WatchEvent::BadObject => {
                    self.update(|h| h.counters.decode_errors += 1);
                    continue;
                }
                WatchEvent::Unknown => continue,
            }
            self.stream_events += 1;
            if self.stream_events == 1 {
                // The stream delivers: the failures in a row are over.
                self.consecutive_failures = 0;
                self.failures_since_list = 0;
                self.update(|h| h.consecutive_failures = 0);
                self.log_recovered();
            }
        }
    }

    /// Logs the end of a logged failure once the stream has proved healthy (an event, or a
    /// healthy clean end) — not when a watch merely got its response headers, which an empty
    /// watch does every time, so a sustained fault logs once, not once per attempt.
    fn log_recovered(&mut self) {
        if self.last_logged.take().is_some() {
            tracing::info!(watch = %describe(&self.key), "watching again");
        }
    }

    /// Records a failure and waits out its backoff. Returns false when the watcher must end.
    async fn fail(&mut self, failure: Failure, step: Step, settings: &WatchSettings) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match failure.action {
            Action::Relist => {
                self.need_list = true;
            }
            Action::Rediscover => {
                self.resolved = None;
                self.need_list = true;
            }
            Action::Retry => {
                if step == Step::Watch && failure.counts_towards_relist() {
                    self.failures_since_list += 1;
                    if self.failures_since_list >= RELIST_AFTER_FAILURES {
                        self.need_list = true;
                    }
                }
            }
            Action::Fail => {}
        }
        let max_retries = settings.backoff.max_retries;
        let (state, reason, message) = if failure.action == Action::Fail {
            (TargetState::Failed, failure.reason, failure.message)
        } else if max_retries > 0 && self.consecutive_failures >= max_retries {
            (
                TargetState::Failed,
                ErrorReason::RetriesExhausted,
                format!(
                    "{} consecutive failures, last: {}",
                    self.consecutive_failures, failure.message
                ),
            )
        } else {
            let state = match failure.reason {
                ErrorReason::Unauthorized => TargetState::Unauthorized,
                ErrorReason::Forbidden => TargetState::Forbidden,
                ErrorReason::NotFound => TargetState::NotFound,
                ErrorReason::IdleTimeout => TargetState::Stalled,
                _ => TargetState::Backoff,
            };
            (state, failure.reason, failure.message)
        };
        if state == TargetState::Failed {
            self.log_change(state, reason, &message);
            let failures = self.consecutive_failures;
            self.update(|h| {
                h.state = state;
                h.connected_since = None;
                h.next_retry_time = None;
                h.consecutive_failures = failures;
                record_error(h, reason, message);
            });
            return self.wait_for_policy_change().await;
        }
        let delay = match failure.retry_after {
            Some(at_least) if reason == ErrorReason::Throttled => {
                self.backoff.retry_after(at_least)
            }
            _ => self.backoff.next_delay(),
        };
        self.log_change(state, reason, &message);
        let failures = self.consecutive_failures;
        self.update(|h| {
            h.state = state;
            h.connected_since = None;
            h.next_retry_time = Some(SystemTime::now() + delay);
            h.consecutive_failures = failures;
            record_error(h, reason, message);
        });
        self.wait_out(delay, state).await;
        self.update(|h| h.next_retry_time = None);
        true
    }

    /// Sleeps `delay`; a `NotFound` target wakes early (after a short floor) when a CRD appears.
    async fn wait_out(&self, delay: Duration, state: TargetState) {
        let crds = match (&self.crds, state) {
            (Some(crds), TargetState::NotFound) => crds,
            _ => {
                tokio::time::sleep(delay).await;
                return;
            }
        };
        let mut changes = crds.subscribe();
        changes.borrow_and_update();
        let floor = delay.min(CRD_WAKE_FLOOR);
        tokio::time::sleep(floor).await;
        if changes.has_changed().unwrap_or(true) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delay - floor) => {}
            _ = changes.changed() => {}
        }
    }

    fn log_change(&mut self, state: TargetState, reason: ErrorReason, message: &str) {
        if self.last_logged == Some((state, reason)) {
            tracing::debug!(watch = %describe(&self.key), ?state, reason = reason.as_str(), message, "watch still failing");
            return;
        }
        self.last_logged = Some((state, reason));
        tracing::warn!(watch = %describe(&self.key), ?state, reason = reason.as_str(), message, "watch failing");
    }

    /// Waits in `Failed` until the pool's settings change; then starts again from scratch.
    async fn wait_for_policy_change(&mut self) -> bool {
        if self.settings.changed().await.is_err() {
            return false;
        }
        self.backoff.reset();
        self.consecutive_failures = 0;
        self.failures_since_list = 0;
        self.resolved = None;
        self.need_list = true;
        self.last_logged = None;
        self.update(|h| {
            h.state = TargetState::Pending;
            h.consecutive_failures = 0;
        });
        true
    }
}

fn set_rv(buffer: &mut String, rv: &str) {
    if !rv.is_empty() {
        buffer.clear();
        buffer.push_str(rv);
    }
}

fn record_error(h: &mut TargetHealth, reason: ErrorReason, message: String) {
    match h.errors.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, n)) => *n += 1,
        None => h.errors.push((reason, 1)),
    }
    h.last_error = Some(LastError {
        reason,
        message,
        time: SystemTime::now(),
    });
}

fn stream_failure(error: &BodyLinesError) -> Failure {
    Failure::new(error.reason(), error.to_string(), Action::Retry)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
