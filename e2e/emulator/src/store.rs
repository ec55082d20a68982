//! The object store: one global resourceVersion, the objects, the event log and the per
//! (resource, namespace) fan-out channels that watches subscribe to (EMULATOR.md §2, §9 P0.2).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::builtins;
use crate::patch::{self, PatchKind};
use crate::prune::FieldValidation;
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the event log and sent to watchers. The serialized line is built
/// once and shared by every watch that sends it unchanged.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Event type.
    pub etype: EventType,
    /// Qualified resource (`configmaps`, `widgets.ex.dev`).
    pub key: Arc<str>,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// State after the change (last state for DELETED).
    pub object: Arc<Value>,
    /// State before the change (MODIFIED only), for selector transitions.
    pub old: Option<Arc<Value>>,
    line: OnceLock<Bytes>,
}

impl Event {
    /// `{"type":…,"object":…}\n`, built on first use.
    pub fn line(&self) -> &Bytes {
        self.line
            .get_or_init(|| event_line(self.etype.as_str(), &self.object))
    }
}

/// Serializes one watch event line.
pub fn event_line(etype: &str, object: &Value) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(etype.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    if serde_json::to_writer(&mut buf, object).is_err() {
        buf.extend_from_slice(b"null");
    }
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: full processing, nothing stored.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (apply).
    pub force: bool,
    /// How a created CRD becomes Established.
    pub crd_mode: CrdMode,
    /// What to do with fields a CRD schema does not declare.
    pub field_validation: FieldValidation,
    /// Warnings for the response (`Warning` headers), filled by the write.
    pub warnings: Arc<Mutex<Vec<String>>>,
    /// Store a custom resource without validating it against its schema and CEL rules (its
    /// defaults are still applied), as an API server that does not enforce them would (tests
    /// of the operator's own validation layer).
    pub skip_admission: bool,
}

impl WriteOpts {
    /// Prunes undeclared fields of a custom resource; 400 under `fieldValidation=Strict`.
    fn prune(&self, res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        let Some(schema) = res.schema.as_ref().filter(|_| res.custom) else {
            return Ok(());
        };
        let removed = crate::prune::prune(obj, schema);
        if removed.is_empty() {
            return Ok(());
        }
        let msgs: Vec<String> = removed
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        match self.field_validation {
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                msgs.join(", ")
            ))),
            FieldValidation::Warn => {
                self.warnings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(msgs);
                Ok(())
            }
            FieldValidation::Ignore => Ok(()),
        }
    }
}

/// Defaults a custom resource from its CRD schema and validates it (schema and CEL rules), as
/// the API server does on every write: 422 Invalid with one cause per violation.
fn admit(res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    admit_ratcheting(res, None, obj)
}

/// As [`admit`], for an update of `old`: a violation inside a top-level section (`spec`,
/// `status`, `metadata`) that the update leaves unchanged is let through, as the API server's
/// validation ratcheting does, so a controller can still write the status of an object whose
/// spec no longer passes (stored before the rule existed, or past a server without it).
fn admit_ratcheting(
    res: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let Some(schema) = res.schema.as_ref().filter(|_| res.custom) else {
        return Ok(());
    };
    // Compared as written, before the schema's defaults fill it in.
    let written = old.map(|_| obj.clone());
    let mut errors = crate::admission::admit(schema, obj);
    if let (Some(old), Some(written)) = (old, written) {
        errors.retain(|(field, _)| {
            let top = field.split(['.', '[']).next().unwrap_or_default();
            top.is_empty() || old.get(top) != written.get(top)
        });
    }
    if errors.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kind_group = format!("{}.{}", res.kind, res.group);
    let listed: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let message = if listed.len() == 1 {
        format!("{kind_group} \"{name}\" is invalid: {}", listed[0])
    } else {
        format!(
            "{kind_group} \"{name}\" is invalid: [{}]",
            listed.join(", ")
        )
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
        .collect();
    Err(ApiError::new(422, "Invalid", message).with_details(
        json!({"name": name, "group": res.group, "kind": res.kind, "causes": causes}),
    ))
}

/// Applies a custom resource's schema defaults without validating it.
fn default_only(res: &ResourceInfo, obj: &mut Value) {
    if let Some(schema) = res.schema.as_ref().filter(|_| res.custom) {
        crate::admission::default(schema, obj);
    }
}

/// How a newly created CRD is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CrdMode {
    /// Established at once.
    #[default]
    Immediate,
    /// Established after a delay (ms).
    Delay(u64),
    /// Names refused: not served.
    NamesConflict,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current state, then changes.
    Current,
    /// Changes after this resourceVersion.
    Exact(u64),
}

/// A started watch: its subscription, initial objects and replayed events.
pub struct WatchStart {
    /// Live events of the resource (and namespace).
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// Objects for synthetic ADDED events (`WatchFrom::Current`).
    pub initial: Vec<Arc<Value>>,
    /// Logged events after the requested resourceVersion.
    pub replay: Vec<Arc<Event>>,
    /// The resourceVersion the stream has reached once `initial`/`replay` are sent.
    pub start_rv: u64,
}

/// Why a watch cannot start.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchStartError {
    /// The requested resourceVersion is older than the retained history.
    TooOld {
        /// Requested.
        requested: u64,
        /// Oldest resumable.
        oldest: u64,
    },
    /// The requested resourceVersion is in the future.
    TooNew {
        /// Requested.
        requested: u64,
        /// Current.
        current: u64,
    },
}

/// A page of a list.
pub struct ListPage {
    /// Items.
    pub items: Vec<Arc<Value>>,
    /// The list's resourceVersion.
    pub rv: u64,
    /// Continue token (empty on the last page).
    pub continue_token: String,
    /// Items after this page, when paged.
    pub remaining: Option<u64>,
}

type ObjKey = (String, String);
/// Server-side apply bookkeeping: (resource, ns, name) → (manager, status?) → applied config.
type AppliedConfigs = HashMap<(Arc<str>, String, String), BTreeMap<(String, bool), Value>>;

struct Inner {
    rv: u64,
    resources: Vec<Arc<ResourceInfo>>,
    objects: HashMap<Arc<str>, BTreeMap<ObjKey, Arc<Value>>>,
    log: VecDeque<Arc<Event>>,
    /// Every event with rv > log_floor is in `log`.
    log_floor: u64,
    history: usize,
    watch_buffer: usize,
    channels: HashMap<(Arc<str>, String), broadcast::Sender<Arc<Event>>>,
    /// Server-side apply bookkeeping: (resource, ns, name) → (manager, status?) → config.
    applied: AppliedConfigs,
    /// owner uid → dependents.
    owners: HashMap<String, Vec<(Arc<str>, String, String)>>,
    /// CRD selectable fields by qualified resource.
    selectable: HashMap<String, Vec<String>>,
}

/// The store.
pub struct Store {
    inner: Mutex<Inner>,
    current_rv: AtomicU64,
    resources_generation: AtomicU64,
}

/// RFC 3339 with second precision and `Z`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(o) = obj else {
        unreachable!("made an object above")
    };
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    match m {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn is_terminating(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// Equality ignoring `metadata.resourceVersion` and `metadata.managedFields`.
fn same_object(a: &Value, b: &Value) -> bool {
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let keys_a = am.keys().filter(|k| *k != "metadata");
    let keys_b = bm.keys().filter(|k| *k != "metadata");
    if keys_a.clone().count() != keys_b.count() {
        return false;
    }
    for k in keys_a {
        if am.get(k) != bm.get(k) {
            return false;
        }
    }
    let empty = Map::new();
    let ma = am
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mb = bm
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let skip = |k: &&String| *k != "resourceVersion" && *k != "managedFields";
    let ka: Vec<_> = ma.keys().filter(skip).collect();
    let kb: Vec<_> = mb.keys().filter(skip).collect();
    ka.len() == kb.len() && ka.iter().all(|k| ma.get(*k) == mb.get(*k))
}

/// True when anything outside `metadata` (and `status`, when it is a subresource) differs.
fn spec_changed(a: &Value, b: &Value, status_sub: bool) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            if status_sub {
                m.remove("status");
            }
        }
        v
    };
    strip(a) != strip(b)
}

fn generate_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn key_of(res: &ResourceInfo) -> Arc<str> {
    // Both Event APIs share one storage.
    if builtins::is_event(res) {
        return Arc::from("events");
    }
    Arc::from(res.qualified_resource())
}

impl Inner {
    fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    fn ns_state(&self, ns: &str) -> Option<Arc<Value>> {
        self.objects
            .get("namespaces")
            .and_then(|m| m.get(&(String::new(), ns.to_string())))
            .cloned()
    }

    fn get(&self, key: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    fn channel(&mut self, key: &Arc<str>, ns: &str) -> broadcast::Sender<Arc<Event>> {
        let cap = self.watch_buffer.max(1);
        self.channels
            .entry((key.clone(), ns.to_string()))
            .or_insert_with(|| broadcast::channel(cap).0)
            .clone()
    }

    /// Records a change: bumps the RV, stores (or removes) the object, logs and fans out the event.
    fn commit(
        &mut self,
        current_rv: &AtomicU64,
        key: &Arc<str>,
        etype: EventType,
        mut obj: Value,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let arc = Arc::new(obj);
        let map = self.objects.entry(key.clone()).or_default();
        match etype {
            EventType::Added | EventType::Modified => {
                map.insert((ns.clone(), name.clone()), arc.clone());
                for uid in owner_uids(&arc) {
                    let deps = self.owners.entry(uid).or_default();
                    let entry = (key.clone(), ns.clone(), name.clone());
                    if !deps.contains(&entry) {
                        deps.push(entry);
                    }
                }
            }
            EventType::Deleted => {
                map.remove(&(ns.clone(), name.clone()));
                self.applied
                    .remove(&(key.clone(), ns.clone(), name.clone()));
            }
        }
        let ev = Arc::new(Event {
            rv,
            etype,
            key: key.clone(),
            namespace: ns.clone(),
            object: arc.clone(),
            old: if etype == EventType::Modified {
                old
            } else {
                None
            },
            line: OnceLock::new(),
        });
        self.log.push_back(ev.clone());
        while self.log.len() > self.history {
            if let Some(e) = self.log.pop_front() {
                self.log_floor = e.rv;
            }
        }
        if let Some(tx) = self.channels.get(&(key.clone(), ns.clone())) {
            let _ = tx.send(ev.clone());
        }
        if !ns.is_empty()
            && let Some(tx) = self.channels.get(&(key.clone(), String::new()))
        {
            let _ = tx.send(ev);
        }
        current_rv.store(rv, Ordering::Release);
        arc
    }
}

/// Fixes `apiVersion` and `kind` for the version a request came through.
pub fn for_version(obj: &Arc<Value>, res: &ResourceInfo) -> Arc<Value> {
    let av = res.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(av.as_str())
        && obj.get("kind").and_then(Value::as_str) == Some(res.kind.as_str())
    {
        return obj.clone();
    }
    if builtins::is_event(res) {
        return Arc::new(builtins::convert_event(obj, !res.group.is_empty()));
    }
    let mut v = (**obj).clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(av));
        m.insert("kind".into(), Value::String(res.kind.clone()));
    }
    Arc::new(v)
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl Store {
    /// A store with the built-in kinds and the seed namespaces.
    pub fn new(history: usize, watch_buffer: usize) -> Arc<Self> {
        let store = Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                resources: builtins::builtin_resources()
                    .into_iter()
                    .map(Arc::new)
                    .collect(),
                objects: HashMap::new(),
                log: VecDeque::new(),
                log_floor: 0,
                history: history.max(1),
                watch_buffer,
                channels: HashMap::new(),
                applied: HashMap::new(),
                owners: HashMap::new(),
                selectable: HashMap::new(),
            }),
            current_rv: AtomicU64::new(0),
            resources_generation: AtomicU64::new(0),
        });
        if let Some(ns_res) = store.find("", "v1", "namespaces") {
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let _ = store.create(
                    &ns_res,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteOpts::default(),
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.current_rv.load(Ordering::Acquire)
    }

    /// Changes every time a resource is registered or removed.
    pub fn resources_generation(&self) -> u64 {
        self.resources_generation.load(Ordering::Acquire)
    }

    /// Every served resource.
    pub fn resources(&self) -> Vec<ResourceInfo> {
        self.lock()
            .resources
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }

    /// Looks a resource up by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.lock().find(group, version, plural)
    }

    /// Looks a resource up by apiVersion and kind or plural (or short name).
    pub fn resolve(&self, api_version: &str, kind_or_plural: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let lower = kind_or_plural.to_lowercase();
        self.lock()
            .resources
            .iter()
            .find(|r| {
                r.group == group
                    && r.version == version
                    && (r.kind == kind_or_plural
                        || r.plural == lower
                        || r.singular == lower
                        || r.short_names.contains(&lower))
            })
            .cloned()
    }

    /// Objects stored.
    pub fn object_count(&self) -> u64 {
        self.lock().objects.values().map(|m| m.len() as u64).sum()
    }

    /// True when a field may be used in a field selector of this resource.
    pub fn field_allowed(&self, res: &ResourceInfo, field: &str) -> bool {
        let g = self.lock();
        let sel = g
            .selectable
            .get(&res.qualified_resource())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        builtins::field_allowed(res, sel, field)
    }

    /// The resourceVersion below which history is gone.
    pub fn log_floor(&self) -> u64 {
        self.lock().log_floor
    }

    /// Drops event history (the `compact` fault).
    pub fn compact(&self, keep_last_n: Option<usize>, below_rv: Option<u64>) {
        let mut g = self.lock();
        if let Some(n) = keep_last_n {
            while g.log.len() > n {
                if let Some(e) = g.log.pop_front() {
                    g.log_floor = e.rv;
                }
            }
        }
        if let Some(rv) = below_rv {
            while g.log.front().is_some_and(|e| e.rv <= rv) {
                g.log.pop_front();
            }
            g.log_floor = g.log_floor.max(rv.min(g.rv));
        }
        if keep_last_n.is_none() && below_rv.is_none() {
            g.log.clear();
            g.log_floor = g.rv;
        }
    }

    /// Forgets history and moves the counter (the `restart` fault).
    pub fn restart_rv(&self, mode: crate::faults::RestartRv) {
        let mut g = self.lock();
        g.log.clear();
        match mode {
            crate::faults::RestartRv::Continue => {}
            crate::faults::RestartRv::Reset => g.rv = (g.rv / 2).max(1),
            crate::faults::RestartRv::Jump => g.rv += 1_000_000,
        }
        g.log_floor = g.rv;
        self.current_rv.store(g.rv, Ordering::Release);
    }

    /// Gets one object.
    pub fn get(&self, res: &ResourceInfo, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let key = key_of(res);
        self.lock()
            .get(&key, ns, name)
            .map(|o| for_version(&o, res))
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// Lists objects (`ns = None`: all namespaces), with selectors and paging.
    pub fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let key = key_of(res);
        let (start_after, pinned_rv) = match continue_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                let parsed = hex_decode(t)
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                let rv = parsed["rv"].as_u64().unwrap_or(0);
                let ns = parsed["ns"].as_str().unwrap_or("").to_string();
                let name = parsed["name"].as_str().unwrap_or("").to_string();
                (Some((ns, name)), Some(rv))
            }
            None => (None, None),
        };
        let g = self.lock();
        if let Some(rv) = pinned_rv
            && rv < g.log_floor
        {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ));
        }
        let list_rv = pinned_rv.unwrap_or(g.rv);
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let mut next: Option<ObjKey> = None;
        if let Some(map) = g.objects.get(&key) {
            let range: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match (&start_after, ns) {
                (Some(after), _) => Box::new(
                    map.range((
                        std::ops::Bound::Excluded(after.clone()),
                        std::ops::Bound::Unbounded,
                    ))
                    .filter(move |((n, _), _)| ns.is_none_or(|x| x == n)),
                ),
                (None, Some(ns)) => Box::new(
                    map.range((ns.to_string(), String::new())..)
                        .take_while(move |((n, _), _)| n == ns),
                ),
                (None, None) => Box::new(map.iter()),
            };
            for ((n, name), obj) in range {
                if ns.is_some_and(|x| x != n) {
                    continue;
                }
                if !labels.matches(obj) || !fields.matches(obj) {
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    if next.is_none() {
                        next = items.last().map(|o: &Arc<Value>| {
                            (
                                meta_str(o, "namespace").to_string(),
                                meta_str(o, "name").to_string(),
                            )
                        });
                    }
                    remaining += 1;
                    continue;
                }
                let _ = name;
                items.push(for_version(obj, res));
            }
        }
        let continue_token = match next {
            Some((ns, name)) => {
                hex_encode(&json!({"rv": list_rv, "ns": ns, "name": name}).to_string())
            }
            None => String::new(),
        };
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
            remaining: if remaining > 0 { Some(remaining) } else { None },
        })
    }

    /// Subscribes a watch, atomically with its initial state or replay.
    pub fn watch_start(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        from: WatchFrom,
        labels: &LabelSelector,
        fields: &FieldSelector,
        future_wait: bool,
    ) -> Result<WatchStart, WatchStartError> {
        let key = key_of(res);
        let mut g = self.lock();
        let current = g.rv;
        if let WatchFrom::Exact(n) = from {
            if n < g.log_floor {
                return Err(WatchStartError::TooOld {
                    requested: n,
                    oldest: g.log_floor,
                });
            }
            if n > current && !future_wait {
                return Err(WatchStartError::TooNew {
                    requested: n,
                    current,
                });
            }
        }
        let rx = g.channel(&key, ns.unwrap_or("")).subscribe();
        let mut initial = Vec::new();
        let mut replay = Vec::new();
        let start_rv = match from {
            WatchFrom::Current => {
                if let Some(map) = g.objects.get(&key) {
                    for ((n, _), obj) in map.iter() {
                        if ns.is_some_and(|x| x != n) {
                            continue;
                        }
                        if labels.matches(obj) && fields.matches(obj) {
                            initial.push(obj.clone());
                        }
                    }
                }
                current
            }
            WatchFrom::Exact(n) => {
                let idx = g.log.partition_point(|e| e.rv <= n);
                for e in g.log.range(idx..) {
                    if *e.key == *key && ns.is_none_or(|x| x == e.namespace) {
                        replay.push(e.clone());
                    }
                }
                n
            }
        };
        Ok(WatchStart {
            rx,
            initial,
            replay,
            start_rv,
        })
    }

    /// Creates an object (POST).
    pub fn create(
        self: &Arc<Self>,
        res: &ResourceInfo,
        ns: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let mut g = self.lock();
        let out = self.create_locked(&mut g, res, ns, body, opts)?;
        drop(g);
        if let CrdMode::Delay(ms) = opts.crd_mode
            && res.plural == "customresourcedefinitions"
            && !opts.dry_run
        {
            let store = Arc::downgrade(self);
            let name = meta_str(&out, "name").to_string();
            tokio::spawn(async move {
                tokio::time::sleep(crate::faults::bounded_ms(ms)).await;
                if let Some(s) = store.upgrade() {
                    s.establish_crd(&name);
                }
            });
        }
        Ok(out)
    }

    fn create_locked(
        &self,
        g: &mut Inner,
        res: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        let key = key_of(res);
        {
            let m = meta_mut(&mut obj);
            let body_ns = m
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if res.namespaced {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                m.insert("namespace".into(), Value::String(ns.to_string()));
            } else {
                m.remove("namespace");
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                let prefix = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        res,
                        "",
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    ));
                }
                let mut candidate = format!("{prefix}{}", generate_suffix());
                for _ in 0..8 {
                    if g.get(&key, ns, &candidate).is_none() {
                        break;
                    }
                    candidate = format!("{prefix}{}", generate_suffix());
                }
                m.insert("name".into(), Value::String(candidate));
            }
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
            ] {
                m.remove(f);
            }
            m.insert(
                "uid".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
            m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
            if builtins::has_generation(res) {
                m.insert("generation".into(), json!(1));
            }
        }
        let name = meta_str(&obj, "name").to_string();
        if res.namespaced {
            match g.ns_state(ns) {
                None => return Err(ApiError::namespace_not_found(ns)),
                Some(n) if is_terminating(&n) => {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!("{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated", res.qualified_resource(), name, ns),
                    )
                    .with_details(json!({"name": name, "group": res.group, "kind": res.plural})));
                }
                Some(_) => {}
            }
        }
        if g.get(&key, ns, &name).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(res.api_version()));
            m.insert("kind".into(), Value::String(res.kind.clone()));
            if res.custom && res.status_subresource {
                m.remove("status");
            }
        }
        opts.prune(res, &mut obj)?;
        if opts.skip_admission {
            default_only(res, &mut obj);
        } else {
            admit(res, &mut obj)?;
        }
        if !res.custom && res.group.is_empty() && res.plural == "namespaces" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let labels = meta_mut(&mut obj)
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(name.clone()),
                );
            }
        }
        if !res.custom
            && res.group.is_empty()
            && res.plural == "secrets"
            && obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            obj["type"] = json!("Opaque");
        }
        let is_crd =
            res.plural == "customresourcedefinitions" && res.group == "apiextensions.k8s.io";
        if is_crd {
            builtins::validate_crd(&obj).map_err(|msg| {
                ApiError::invalid(
                    res,
                    &name,
                    msg.split(':').next().unwrap_or(""),
                    "FieldValueInvalid",
                    &msg,
                )
            })?;
            builtins::default_crd_names(&mut obj);
            obj["status"] = crd_status(&obj, opts.crd_mode);
        }
        if opts.field_manager.is_some() {
            // Recorded as an Update manager (kubectl, kube-rs PostParams).
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let out = g.commit(&self.current_rv, &key, EventType::Added, obj, None);
        if is_crd && opts.crd_mode == CrdMode::Immediate {
            self.register_crd(g, &out);
        }
        Ok((*out).clone())
    }

    fn establish_crd(&self, name: &str) {
        let mut g = self.lock();
        let key: Arc<str> = Arc::from("customresourcedefinitions.apiextensions.k8s.io");
        let Some(old) = g.get(&key, "", name) else {
            return;
        };
        let mut new = (*old).clone();
        new["status"] = crd_status(&new, CrdMode::Immediate);
        let out = g.commit(&self.current_rv, &key, EventType::Modified, new, Some(old));
        self.register_crd(&mut g, &out);
    }

    fn register_crd(&self, g: &mut Inner, crd: &Value) {
        let new = builtins::crd_resources(crd);
        let (group, plural) = crd_group_plural(crd);
        g.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        g.resources.extend(new.into_iter().map(Arc::new));
        g.selectable.insert(
            format!("{plural}.{group}"),
            builtins::crd_selectable_fields(crd),
        );
        self.resources_generation.fetch_add(1, Ordering::AcqRel);
    }

    fn unregister_crd(&self, g: &mut Inner, crd: &Value) {
        let (group, plural) = crd_group_plural(crd);
        g.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        // Open watches of the removed resource end (cleanly) once they have sent what is queued.
        let key = format!("{plural}.{group}");
        g.channels.retain(|(k, _), _| **k != *key);
        g.selectable.remove(&key);
        self.resources_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Replaces an object (PUT), main or `/status`.
    pub fn update(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOpts,
        status_sub: bool,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut g = self.lock();
        let key = key_of(res);
        let old = g
            .get(&key, ns, name)
            .map(|o| for_version(&o, res))
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let rv = meta_str(&body, "resourceVersion");
        if rv.is_empty() {
            if res.custom {
                return Err(ApiError::invalid(
                    res,
                    name,
                    "metadata.resourceVersion",
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update",
                ));
            }
        } else if rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(res, name));
        }
        self.write_update(&mut g, res, &key, old, body, opts, status_sub)
    }

    /// Patches an object (PATCH); returns the HTTP code (200, or 201 when apply created it).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        self: &Arc<Self>,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        opts: &WriteOpts,
        status_sub: bool,
    ) -> Result<(u16, Value), ApiError> {
        if kind == PatchKind::Strategic && res.custom {
            return Err(ApiError::unsupported_media_type());
        }
        if kind == PatchKind::Apply {
            return self.apply(res, ns, name, body, opts, status_sub);
        }
        let mut g = self.lock();
        let key = key_of(res);
        let old = g
            .get(&key, ns, name)
            .map(|o| for_version(&o, res))
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let mut new = (*old).clone();
        match kind {
            PatchKind::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the merge patch must be a JSON object",
                    ));
                }
                patch::merge_patch(&mut new, &body)
            }
            PatchKind::Strategic => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the strategic merge patch must be a JSON object",
                    ));
                }
                patch::strategic_merge(&mut new, &body)
            }
            PatchKind::Json => {
                if body.as_array().is_some_and(|ops| ops.len() > 10_000) {
                    return Err(ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        "The allowed operations in a JSON patch are limited to 10000",
                    ));
                }
                patch::json_patch(&mut new, &body).map_err(ApiError::unprocessable)?
            }
            PatchKind::Apply => {}
        }
        let new_rv = meta_str(&new, "resourceVersion");
        if !new_rv.is_empty() && new_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(res, name));
        }
        let out = self.write_update(&mut g, res, &key, old, new, opts, status_sub)?;
        Ok((200, out))
    }

    fn apply(
        self: &Arc<Self>,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        cfg: Value,
        opts: &WriteOpts,
        status_sub: bool,
    ) -> Result<(u16, Value), ApiError> {
        let manager = match opts.field_manager.as_deref() {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => {
                return Err(ApiError::unprocessable(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
        };
        if !cfg.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        if cfg
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion not set",
            ));
        }
        if cfg
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request("invalid object type: kind not set"));
        }
        let cfg_name = meta_str(&cfg, "name");
        if !cfg_name.is_empty() && cfg_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut cfg = cfg;
        {
            let m = meta_mut(&mut cfg);
            for f in [
                "uid",
                "creationTimestamp",
                "managedFields",
                "generation",
                "deletionTimestamp",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        let key = key_of(res);
        let mut g = self.lock();
        let obj_key = (key.clone(), ns.to_string(), name.to_string());
        let Some(old) = g.get(&key, ns, name).map(|o| for_version(&o, res)) else {
            if status_sub {
                return Err(ApiError::not_found(res, name));
            }
            let rv = meta_str(&cfg, "resourceVersion");
            if !rv.is_empty() {
                return Err(ApiError::conflict(res, name));
            }
            let mut obj = cfg.clone();
            meta_mut(&mut obj).insert("name".into(), Value::String(name.to_string()));
            meta_mut(&mut obj).insert(
                "managedFields".into(),
                json!([managed_entry(
                    &manager,
                    "Apply",
                    &res.api_version(),
                    &cfg,
                    false
                )]),
            );
            let out = self.create_locked(&mut g, res, ns, obj, opts)?;
            if !opts.dry_run {
                g.applied
                    .entry(obj_key)
                    .or_default()
                    .insert((manager, false), cfg);
            }
            drop(g);
            if let CrdMode::Delay(ms) = opts.crd_mode
                && res.plural == "customresourcedefinitions"
                && !opts.dry_run
            {
                let store = Arc::downgrade(self);
                let name = name.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(crate::faults::bounded_ms(ms)).await;
                    if let Some(s) = store.upgrade() {
                        s.establish_crd(&name);
                    }
                });
            }
            return Ok((201, out));
        };
        let rv = meta_str(&cfg, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(res, name));
        }
        meta_mut(&mut cfg).remove("resourceVersion");
        let configs = g.applied.get(&obj_key).cloned().unwrap_or_default();
        let prev = configs.get(&(manager.clone(), status_sub));
        let others: Vec<&Value> = configs
            .iter()
            .filter(|((m, s), _)| *m != manager && *s == status_sub)
            .map(|(_, v)| v)
            .collect();
        if !opts.force {
            let mut conflicts = Vec::new();
            for ((other, _), other_cfg) in configs
                .iter()
                .filter(|((m, s), _)| *m != manager && *s == status_sub)
            {
                for field in patch::apply_conflicts(&cfg, other_cfg, &old) {
                    conflicts.push((other.clone(), field));
                }
            }
            if !conflicts.is_empty() {
                return Err(ApiError::apply_conflicts(res, name, &conflicts));
            }
        }
        let mut new = (*old).clone();
        if let Some(prev) = prev {
            patch::remove_omitted(&mut new, prev, &cfg, &others);
        }
        patch::apply_merge(&mut new, &cfg, !res.custom);
        // managedFields: one Apply entry per manager (and subresource).
        let entry = managed_entry(&manager, "Apply", &res.api_version(), &cfg, status_sub);
        let mut mf: Vec<Value> = meta(&old)
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let sub = if status_sub { Some("status") } else { None };
        let existing = mf.iter().position(|e| {
            e["manager"].as_str() == Some(manager.as_str())
                && e["operation"].as_str() == Some("Apply")
                && e.get("subresource").and_then(Value::as_str) == sub
        });
        let same_fields = existing.is_some_and(|i| mf[i]["fieldsV1"] == entry["fieldsV1"]);
        match existing {
            Some(_) if same_fields => {}
            Some(i) => mf[i] = entry,
            None => mf.push(entry),
        }
        meta_mut(&mut new).insert("managedFields".into(), Value::Array(mf));
        if !opts.dry_run {
            g.applied
                .entry(obj_key)
                .or_default()
                .insert((manager, status_sub), cfg);
        }
        let out = self.write_update(&mut g, res, &key, old, new, opts, status_sub)?;
        Ok((200, out))
    }

    /// Shared tail of update, patch and apply: immutable fields, status rules, finalizer rules,
    /// generation, no-op short-circuit, last-finalizer removal, commit.
    #[allow(clippy::too_many_arguments)]
    fn write_update(
        &self,
        g: &mut Inner,
        res: &ResourceInfo,
        key: &Arc<str>,
        old: Arc<Value>,
        mut new: Value,
        opts: &WriteOpts,
        status_sub: bool,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&old, "name").to_string();
        if status_sub {
            // Only .status (and managedFields) of the submitted object count.
            let mut merged = (*old).clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = meta(&new).and_then(|m| m.get("managedFields")).cloned() {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
            new = merged;
        } else {
            if !new.is_object() {
                return Err(ApiError::bad_request("the object must be a JSON object"));
            }
            let old_meta = meta(&old).cloned().unwrap_or_default();
            let m = meta_mut(&mut new);
            for f in [
                "uid",
                "name",
                "namespace",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            if let Some(o) = new.as_object_mut() {
                o.insert("apiVersion".into(), old["apiVersion"].clone());
                o.insert("kind".into(), old["kind"].clone());
                if res.status_subresource {
                    match old.get("status") {
                        Some(s) => {
                            o.insert("status".into(), s.clone());
                        }
                        None => {
                            o.remove("status");
                        }
                    }
                }
            }
            if res.plural == "customresourcedefinitions" && res.group == "apiextensions.k8s.io" {
                builtins::default_crd_names(&mut new);
            }
        }
        opts.prune(res, &mut new)?;
        if opts.skip_admission {
            default_only(res, &mut new);
        } else {
            admit_ratcheting(res, Some(&old), &mut new)?;
        }
        if is_terminating(&old) {
            let before = finalizers(&old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::unprocessable(format!(
                    "{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                    res.kind, name
                )));
            }
        }
        if builtins::has_generation(res)
            && !status_sub
            && spec_changed(&old, &new, res.status_subresource)
        {
            let gen_ = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(gen_ + 1));
        }
        if same_object(&old, &new) {
            return Ok((*old).clone());
        }
        if opts.dry_run {
            return Ok(new);
        }
        if is_terminating(&old) && finalizers(&new).is_empty() {
            let out = self.remove_locked(g, res, key, new, Some(old))?;
            return Ok(out);
        }
        let out = g.commit(&self.current_rv, key, EventType::Modified, new, Some(old));
        if res.plural == "customresourcedefinitions"
            && res.group == "apiextensions.k8s.io"
            && crd_established(&out)
        {
            self.register_crd(g, &out);
        }
        Ok((*out).clone())
    }

    /// Removes an object for good: DELETED event, CRD cleanup, garbage collection, namespace end.
    fn remove_locked(
        &self,
        g: &mut Inner,
        res: &ResourceInfo,
        key: &Arc<str>,
        obj: Value,
        old: Option<Arc<Value>>,
    ) -> Result<Value, ApiError> {
        let _ = old;
        let is_crd =
            res.plural == "customresourcedefinitions" && res.group == "apiextensions.k8s.io";
        if is_crd {
            let group = obj
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let plural = obj
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let cr_key: Arc<str> = Arc::from(format!("{plural}.{group}"));
            let crs: Vec<Arc<Value>> = g
                .objects
                .get(&cr_key)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            for cr in crs {
                g.commit(
                    &self.current_rv,
                    &cr_key,
                    EventType::Deleted,
                    (*cr).clone(),
                    None,
                );
            }
            self.unregister_crd(g, &obj);
        }
        let ns = meta_str(&obj, "namespace").to_string();
        let uid = meta_str(&obj, "uid").to_string();
        let out = g.commit(&self.current_rv, key, EventType::Deleted, obj, None);
        self.collect_garbage(g, &uid, "Background");
        if res.plural == "namespaces" && res.group.is_empty() {
            // Nothing else to do: contents were deleted when termination started.
        } else if !ns.is_empty() {
            self.maybe_finish_namespace(g, &ns);
        }
        Ok((*out).clone())
    }

    fn collect_garbage(&self, g: &mut Inner, owner_uid: &str, policy: &str) {
        let Some(deps) = g.owners.remove(owner_uid) else {
            return;
        };
        for (key, ns, name) in deps {
            let Some(dep) = g.get(&key, &ns, &name) else {
                continue;
            };
            if !owner_uids(&dep).iter().any(|u| u == owner_uid) {
                continue;
            }
            let mut new = (*dep).clone();
            if let Some(refs) = meta_mut(&mut new)
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            let left = owner_uids(&new).len();
            let Some(res) = g
                .resources
                .iter()
                .find(|r| r.qualified_resource() == *key)
                .cloned()
            else {
                continue;
            };
            if left == 0 && policy != "Orphan" {
                let _ = self.delete_locked(g, &res, &ns, &name, &DeleteOpts::default());
            } else {
                if left == 0 {
                    meta_mut(&mut new).remove("ownerReferences");
                }
                g.commit(&self.current_rv, &key, EventType::Modified, new, Some(dep));
            }
        }
    }

    fn maybe_finish_namespace(&self, g: &mut Inner, ns: &str) {
        let Some(nsobj) = g.ns_state(ns) else { return };
        if !is_terminating(&nsobj) || !finalizers(&nsobj).is_empty() {
            return;
        }
        let empty = g.objects.iter().all(|(_, m)| {
            m.range((ns.to_string(), String::new())..)
                .next()
                .is_none_or(|((n, _), _)| n != ns)
        });
        if empty {
            let key: Arc<str> = Arc::from("namespaces");
            g.commit(
                &self.current_rv,
                &key,
                EventType::Deleted,
                (*nsobj).clone(),
                None,
            );
        }
    }

    /// Deletes an object (DELETE).
    pub fn delete(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let mut g = self.lock();
        self.delete_locked(&mut g, res, ns, name, opts)
    }

    fn delete_locked(
        &self,
        g: &mut Inner,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let key = key_of(res);
        let old = g
            .get(&key, ns, name)
            .map(|o| for_version(&o, res))
            .ok_or_else(|| ApiError::not_found(res, name))?;
        if opts
            .precondition_uid
            .as_deref()
            .is_some_and(|u| !u.is_empty() && u != meta_str(&old, "uid"))
            || opts
                .precondition_rv
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != meta_str(&old, "resourceVersion"))
        {
            return Err(ApiError::conflict(res, name));
        }
        let policy = opts
            .propagation
            .clone()
            .unwrap_or_else(|| "Background".into());
        let is_ns = res.plural == "namespaces" && res.group.is_empty();
        let fins = finalizers(&old);
        if is_terminating(&old) {
            return Ok((*old).clone());
        }
        if !fins.is_empty() || policy == "Foreground" || is_ns {
            let mut new = (*old).clone();
            {
                let m = meta_mut(&mut new);
                m.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if let Some(gen_) = m.get("generation").and_then(Value::as_i64)
                    && gen_ > 0
                {
                    m.insert("generation".into(), json!(gen_ + 1));
                }
            }
            if is_ns {
                new["status"] = json!({"phase": "Terminating"});
            }
            if opts.dry_run {
                return Ok(new);
            }
            let uid = meta_str(&old, "uid").to_string();
            let out = g.commit(&self.current_rv, &key, EventType::Modified, new, Some(old));
            if is_ns {
                let keys: Vec<Arc<str>> = g.objects.keys().cloned().collect();
                for k in keys {
                    let names: Vec<String> = g
                        .objects
                        .get(&k)
                        .map(|m| {
                            m.range((name.to_string(), String::new())..)
                                .take_while(|((n, _), _)| n == name)
                                .map(|((_, nm), _)| nm.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    let Some(r) = g
                        .resources
                        .iter()
                        .find(|r| r.qualified_resource() == *k && r.namespaced)
                        .cloned()
                    else {
                        continue;
                    };
                    for nm in names {
                        let _ = self.delete_locked(g, &r, name, &nm, &DeleteOpts::default());
                    }
                }
                if fins.is_empty() {
                    self.maybe_finish_namespace(g, name);
                }
                let current = g.get(&key, "", name).unwrap_or(out);
                return Ok((*current).clone());
            }
            if policy == "Foreground" {
                self.collect_garbage(g, &uid, "Background");
                if fins.is_empty() {
                    let current = g.get(&key, ns, name).unwrap_or(out);
                    return self.remove_locked(g, res, &key, (*current).clone(), None);
                }
            }
            return Ok((*out).clone());
        }
        if opts.dry_run {
            return Ok(status::delete_success(res, name, meta_str(&old, "uid")));
        }
        let uid = meta_str(&old, "uid").to_string();
        if policy == "Orphan" {
            self.collect_garbage(g, &uid, "Orphan");
        }
        self.remove_locked(g, res, &key, (*old).clone(), None)?;
        Ok(status::delete_success(res, name, &uid))
    }

    /// Deletes every match of the selectors (DELETE on a collection).
    pub fn delete_collection(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let page = self.list(res, ns, labels, fields, None, None)?;
        let mut g = self.lock();
        for obj in page.items {
            let ons = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            match self.delete_locked(&mut g, res, &ons, &name, opts) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
    }
}

fn managed_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    cfg: &Value,
    status_sub: bool,
) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": patch::fields_v1(cfg),
    });
    if status_sub {
        e["subresource"] = json!("status");
    }
    e
}

fn crd_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

fn crd_status(crd: &Value, mode: CrdMode) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let now = now_rfc3339();
    let conditions = match mode {
        CrdMode::Immediate => json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
        ]),
        CrdMode::Delay(_) => json!([]),
        CrdMode::NamesConflict => json!([
            {"type": "NamesAccepted", "status": "False", "reason": "MultipleNamesNotAllowed", "message": "names conflict with an existing resource", "lastTransitionTime": now},
            {"type": "Established", "status": "False", "reason": "NotAccepted", "message": "not all names are accepted", "lastTransitionTime": now}
        ]),
    };
    json!({
        "conditions": conditions,
        "acceptedNames": if mode == CrdMode::NamesConflict { json!({"plural": "", "kind": ""}) } else { names },
        "storedVersions": storage,
    })
}

/// The `spec.group` and `spec.names.plural` of a CustomResourceDefinition (empty when missing).
fn crd_group_plural(crd: &Value) -> (String, String) {
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (text("/spec/group"), text("/spec/names/plural"))
}
