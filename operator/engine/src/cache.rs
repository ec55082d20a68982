//! The compact object cache of one watch: raw JSON bytes plus the few parsed fields the engine
//! needs (namespace, name, uid, resourceVersion) as ranges of those bytes, in a hash table keyed
//! by namespace/name. No `serde_json::Value` trees, and one allocation per object.
//!
//! A pool's caches share one [`ObjectBudget`] that enforces `limits.maxObjects` across the pool.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hashbrown::hash_table::Entry;

use crate::health::{CacheView, WatchKey, digest};

/// The pool-wide count of cached objects and its cap (`limits.maxObjects`).
#[derive(Debug)]
pub struct ObjectBudget {
    used: AtomicU64,
    max: AtomicU64,
}

impl ObjectBudget {
    /// A budget of `max` objects.
    pub fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
        }
    }

    /// Objects cached across the pool.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the cap (reconfigure in place).
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Tries to take `n` more objects; false (nothing taken) when that would exceed the cap.
    fn try_take(&self, n: u64) -> bool {
        let max = self.max();
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let next = used.checked_add(n)?;
                (next <= max).then_some(next)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        // Saturating: never wraps even if accounting were off.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// One cached object, held in a single allocation that is all the hash table points to: a
/// small header, the stored JSON, then the namespace, name, uid and resourceVersion only when
/// they are not found verbatim inside the JSON (a JSON string with escapes). The header holds
/// where each of those fields is.
///
/// Separate boxed strings for the fields would cost four more allocations and 64 B of pointers
/// per object, and a wider table entry costs its width again in every empty slot of the table:
/// for a `metadataOnly` object either is as much as its whole `metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedObject {
    buf: Box<[u8]>,
}

const NAMESPACE: usize = 0;
const NAME: usize = 1;
const UID: usize = 2;
const RESOURCE_VERSION: usize = 3;
const FIELDS: usize = 4;
/// Header: the JSON's length (u32), then each field's start (u32) and length (u16), little
/// endian.
const HEADER: usize = 4 + FIELDS * 4 + FIELDS * 2;

/// The object cannot be cached in this compact form: larger than 4 GiB in all, or a field
/// (namespace, name, uid, resourceVersion) longer than 64 KiB, all far beyond what the API
/// server allows. Refused rather than truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an object of {len} bytes (or one of its metadata fields) is too large to cache")]
pub struct ObjectTooLarge {
    /// The object's size with its fields.
    pub len: usize,
}

/// The fields of an object that the cache keeps beside its JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectFields<'a> {
    /// `metadata.namespace`, `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid`.
    pub uid: &'a str,
    /// `metadata.resourceVersion`.
    pub resource_version: &'a str,
}

impl CachedObject {
    /// An entry storing `json` with its `fields`. Fields that are slices of `json` (as the
    /// decoder borrows them) are kept as ranges of it instead of copies.
    pub fn new(json: &str, fields: ObjectFields<'_>) -> Result<Self, ObjectTooLarge> {
        let parts = [
            fields.namespace.unwrap_or(""),
            fields.name,
            fields.uid,
            fields.resource_version,
        ];
        let len = HEADER + json.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let too_large = ObjectTooLarge { len };
        let json_len = u32::try_from(json.len()).map_err(|_| too_large)?;
        if u32::try_from(len).is_err() {
            return Err(too_large);
        }
        let mut starts = [0u32; FIELDS];
        let mut lens = [0u16; FIELDS];
        let mut extra = 0usize;
        for (i, part) in parts.iter().enumerate() {
            lens[i] = u16::try_from(part.len()).map_err(|_| too_large)?;
            let start = match inside(json, part) {
                Some(offset) => HEADER + offset,
                None => {
                    extra += part.len();
                    HEADER + json.len() + extra - part.len()
                }
            };
            // Below `len`, which fits in u32.
            starts[i] = u32::try_from(start).unwrap_or(u32::MAX);
        }
        let mut buf = Vec::with_capacity(HEADER + json.len() + extra);
        buf.extend_from_slice(&json_len.to_le_bytes());
        for start in starts {
            buf.extend_from_slice(&start.to_le_bytes());
        }
        for len in lens {
            buf.extend_from_slice(&len.to_le_bytes());
        }
        buf.extend_from_slice(json.as_bytes());
        for part in parts {
            if inside(json, part).is_none() {
                buf.extend_from_slice(part.as_bytes());
            }
        }
        Ok(Self {
            buf: buf.into_boxed_slice(),
        })
    }

    fn u32_at(&self, at: usize) -> usize {
        self.buf
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    }

    fn text(&self, field: usize) -> &str {
        let start = self.u32_at(4 + field * 4);
        let at = 4 + FIELDS * 4 + field * 2;
        let len = self
            .buf
            .get(at..at + 2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(0, |b| usize::from(u16::from_le_bytes(b)));
        // The ranges are char boundaries of `&str`s copied in whole, so this never fails.
        self.buf
            .get(start..start + len)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }

    /// `metadata.namespace`, empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        self.text(NAMESPACE)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.text(NAME)
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.text(UID)
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> &str {
        self.text(RESOURCE_VERSION)
    }

    /// The raw JSON of the whole object, or of its `metadata` only for `metadataOnly` watches.
    pub fn raw(&self) -> &[u8] {
        let len = self.u32_at(0);
        self.buf.get(HEADER..HEADER + len).unwrap_or_default()
    }

    fn is(&self, namespace: &str, name: &str) -> bool {
        self.name() == name && self.namespace() == namespace
    }
}

/// Objects keyed by namespace and name, each keeping its own key inside its allocation (a
/// `HashMap<String, _>` would add a key allocation per object). `hashbrown::HashTable` is the
/// table with caller-supplied hashing that std does not expose.
#[derive(Clone, Debug, Default)]
pub struct ObjectSet {
    table: hashbrown::HashTable<CachedObject>,
    hasher: RandomState,
}

/// The hash of a namespace and name. The separator cannot occur in either (DNS names), and
/// keeps ("a/b", "c") apart from ("a", "b/c") in any case.
fn hash_key(hasher: &RandomState, namespace: &str, name: &str) -> u64 {
    hasher.hash_one((namespace, '/', name))
}

impl ObjectSet {
    /// The table's entry for `object`'s namespace and name, found with one hash.
    fn entry(&mut self, object: &CachedObject) -> Entry<'_, CachedObject> {
        let hasher = &self.hasher;
        let hash = hash_key(hasher, object.namespace(), object.name());
        self.table.entry(
            hash,
            |o| o.is(object.namespace(), object.name()),
            |o| hash_key(hasher, o.namespace(), o.name()),
        )
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The object `namespace`/`name` (namespace `""` for cluster-scoped objects).
    pub fn get(&self, namespace: &str, name: &str) -> Option<&CachedObject> {
        let hash = hash_key(&self.hasher, namespace, name);
        self.table.find(hash, |o| o.is(namespace, name))
    }

    /// True when `namespace`/`name` is present.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(namespace, name).is_some()
    }

    /// Inserts `object`, replacing the object of the same namespace and name; returns that one.
    pub fn insert(&mut self, object: CachedObject) -> Option<CachedObject> {
        match self.entry(&object) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(entry.get_mut(), object)),
            Entry::Vacant(entry) => {
                entry.insert(object);
                None
            }
        }
    }

    /// Removes and returns the object `namespace`/`name`.
    pub fn remove(&mut self, namespace: &str, name: &str) -> Option<CachedObject> {
        let hash = hash_key(&self.hasher, namespace, name);
        self.table
            .find_entry(hash, |o| o.is(namespace, name))
            .ok()
            .map(|entry| entry.remove().0)
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The objects, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CachedObject> {
        self.table.iter()
    }
}

/// Where `part` starts in `json` when it is a slice of it, checked by content so that a wrong
/// guess can only cost a copy, never a wrong answer.
fn inside(json: &str, part: &str) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let end = offset.checked_add(part.len())?;
    (json.get(offset..end) == Some(part)).then_some(offset)
}

/// The identity of a cached object as tests compare it with the API server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectIdentity {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

/// The cache was refused an object because the pool is at `limits.maxObjects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pool would cache more than {max} objects")]
pub struct TooManyObjects {
    /// The cap that was hit.
    pub max: u64,
}

/// What applying a watch event did to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new object.
    Added,
    /// An object replaced by a newer version.
    Modified,
    /// An object removed.
    Deleted,
    /// Nothing changed (an older or equal version, or a delete of an unknown object).
    Unchanged,
}

/// The cache of one watch. Cheap to clone (shared); locks are never held across an await.
#[derive(Clone, Debug)]
pub struct Cache {
    key: Arc<WatchKey>,
    store: Arc<Mutex<ObjectSet>>,
    budget: Arc<ObjectBudget>,
    changes: Option<Arc<tokio::sync::watch::Sender<u64>>>,
}

fn lock(store: &Mutex<ObjectSet>) -> MutexGuard<'_, ObjectSet> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Compares two resourceVersions as the API server's integers when both parse; otherwise any
/// difference counts as newer (resourceVersions are opaque to clients).
fn is_older(candidate: &str, current: &str) -> bool {
    match (candidate.parse::<u64>(), current.parse::<u64>()) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

impl Cache {
    /// An empty cache for `key`, drawing on the pool's `budget`.
    pub fn new(key: WatchKey, budget: Arc<ObjectBudget>) -> Self {
        Self {
            key: Arc::new(key),
            store: Arc::new(Mutex::new(ObjectSet::default())),
            budget,
            changes: None,
        }
    }

    /// Bumps `changes` whenever an object is added or modified, or the cache is replaced by a
    /// list (used to notice CRDs appearing).
    pub fn with_change_signal(mut self, changes: Arc<tokio::sync::watch::Sender<u64>>) -> Self {
        self.changes = Some(changes);
        self
    }

    fn signal_change(&self) {
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The watch this cache belongs to.
    pub fn key(&self) -> &WatchKey {
        &self.key
    }

    /// Number of cached objects.
    pub fn len(&self) -> u64 {
        lock(&self.store).len() as u64
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies an ADDED or MODIFIED event.
    pub fn upsert(&self, object: CachedObject) -> Result<Applied, TooManyObjects> {
        let mut objects = lock(&self.store);
        let applied = match objects.entry(&object) {
            Entry::Occupied(mut entry) => {
                let existing = entry.get();
                if existing.uid() == object.uid()
                    && is_older(object.resource_version(), existing.resource_version())
                {
                    return Ok(Applied::Unchanged);
                }
                *entry.get_mut() = object;
                Applied::Modified
            }
            Entry::Vacant(entry) => {
                if !self.budget.try_take(1) {
                    return Err(TooManyObjects {
                        max: self.budget.max(),
                    });
                }
                entry.insert(object);
                Applied::Added
            }
        };
        drop(objects);
        self.signal_change();
        Ok(applied)
    }

    /// Applies a DELETED event.
    pub fn remove(&self, namespace: Option<&str>, name: &str) -> Applied {
        let removed = lock(&self.store).remove(namespace.unwrap_or(""), name);
        match removed {
            Some(_) => {
                self.budget.give_back(1);
                Applied::Deleted
            }
            None => Applied::Unchanged,
        }
    }

    /// Replaces the whole content with a fresh list. Returns how many cached objects vanished
    /// (the deletes a consumer would see). Refused, leaving the cache as it was, when the new
    /// content would put the pool over its cap.
    pub fn replace(&self, objects: ObjectSet) -> Result<u64, TooManyObjects> {
        let mut store = lock(&self.store);
        let old_len = store.len() as u64;
        let new_len = objects.len() as u64;
        if new_len > old_len {
            if !self.budget.try_take(new_len - old_len) {
                return Err(TooManyObjects {
                    max: self.budget.max(),
                });
            }
        } else {
            self.budget.give_back(old_len - new_len);
        }
        let vanished = store
            .iter()
            .filter(|o| !objects.contains(o.namespace(), o.name()))
            .count() as u64;
        *store = objects;
        drop(store);
        self.signal_change();
        Ok(vanished)
    }

    /// Checks whether `n` objects would fit the pool's budget once this cache's own objects are
    /// released (used while a list is being paged in).
    pub fn fits(&self, n: u64) -> bool {
        let own = self.len();
        self.budget.used().saturating_sub(own).saturating_add(n) <= self.budget.max()
    }

    /// Empties the cache and returns its objects to the pool's budget.
    pub fn clear(&self) {
        let mut store = lock(&self.store);
        let n = store.len() as u64;
        *store = ObjectSet::default();
        self.budget.give_back(n);
    }

    /// Count and digest of the cached (uid, resourceVersion) pairs.
    pub fn view(&self) -> CacheView {
        let store = lock(&self.store);
        let digest = digest(store.iter().map(|o| (o.uid(), o.resource_version())));
        CacheView {
            key: (*self.key).clone(),
            count: store.len() as u64,
            digest,
        }
    }

    /// The cached objects' identities, sorted (for tests and diagnostics).
    pub fn identities(&self) -> Vec<ObjectIdentity> {
        let store = lock(&self.store);
        let mut out: Vec<ObjectIdentity> = store
            .iter()
            .map(|o| ObjectIdentity {
                uid: o.uid().to_owned(),
                namespace: o.namespace().to_owned(),
                name: o.name().to_owned(),
                resource_version: o.resource_version().to_owned(),
            })
            .collect();
        out.sort();
        out
    }

    /// The raw bytes stored for an object, if cached.
    pub fn raw(&self, namespace: Option<&str>, name: &str) -> Option<Bytes> {
        lock(&self.store)
            .get(namespace.unwrap_or(""), name)
            .map(|o| Bytes::copy_from_slice(o.raw()))
    }

    /// Bytes held by the cached raw objects (an estimate of the cache's memory).
    pub fn raw_bytes(&self) -> u64 {
        lock(&self.store).iter().map(|o| o.raw().len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use watchpool_api::{NamespaceScope, TargetConfig};

    use super::*;

    fn key() -> WatchKey {
        WatchKey {
            target: Arc::new(TargetConfig {
                api_version: "v1".into(),
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                scope: NamespaceScope::All,
                label_selector: None,
                field_selector: None,
                metadata_only: false,
            }),
            namespace: None,
        }
    }

    fn obj(namespace: Option<&str>, name: &str, uid: &str, rv: &str) -> CachedObject {
        let fields = ObjectFields {
            namespace,
            name,
            uid,
            resource_version: rv,
        };
        CachedObject::new("{}", fields).unwrap()
    }

    fn fields<'a>(uid: &'a str, rv: &'a str) -> ObjectFields<'a> {
        ObjectFields {
            namespace: Some("ns"),
            name: "n",
            uid,
            resource_version: rv,
        }
    }

    #[test]
    fn uid_and_version_borrowed_from_the_json_are_not_copied() {
        let json = r#"{"metadata":{"uid":"u-1","resourceVersion":"42"}}"#;
        let uid = &json[20..23];
        let rv = &json[44..46];
        assert_eq!((uid, rv), ("u-1", "42"));
        let object = CachedObject::new(
            json,
            ObjectFields {
                namespace: None,
                name: "",
                uid,
                resource_version: rv,
            },
        )
        .unwrap();
        assert_eq!(object.buf.len(), HEADER + json.len());
        assert_eq!(object.uid(), "u-1");
        assert_eq!(object.resource_version(), "42");
        assert_eq!(object.raw(), json.as_bytes());
    }

    #[test]
    fn uid_and_version_not_in_the_json_are_kept_after_it() {
        let object = CachedObject::new(r#"{"a":1}"#, fields("u\"x", "7")).unwrap();
        // "ns" and "n" are not in the JSON either.
        assert_eq!(object.buf.len(), HEADER + 7 + 2 + 1 + 3 + 1);
        assert_eq!((object.namespace(), object.name()), ("ns", "n"));
        assert_eq!(object.uid(), "u\"x");
        assert_eq!(object.resource_version(), "7");
        assert_eq!(object.raw(), br#"{"a":1}"#);
        // An equal string elsewhere in memory is found by content, not mistaken by address.
        let elsewhere = String::from("a");
        let object = CachedObject::new(r#"{"a":1}"#, fields(&elsewhere, "")).unwrap();
        assert_eq!(object.uid(), "a");
        assert_eq!(object.resource_version(), "");
    }

    #[test]
    fn an_entry_is_one_pointer_and_long_fields_are_refused() {
        // The table holds a boxed slice (16 B), against a boxed key, two boxed strings and
        // Bytes (80 B).
        assert_eq!(std::mem::size_of::<CachedObject>(), 16);
        let long = "x".repeat(70_000);
        let refused = CachedObject::new("{}", fields(&long, "1"));
        assert!(refused.is_err());
        let json = format!(r#"{{"uid":"{long}"}}"#);
        assert!(CachedObject::new(&json, fields(&json[8..8 + long.len()], "1")).is_err());
    }

    #[test]
    fn objects_are_found_by_namespace_and_name_and_replaced_in_place() {
        let mut set = ObjectSet::default();
        assert!(set.insert(obj(Some("a"), "x", "1", "1")).is_none());
        assert!(set.insert(obj(Some("b"), "x", "2", "1")).is_none());
        assert!(set.insert(obj(None, "x", "3", "1")).is_none());
        let old = set.insert(obj(Some("a"), "x", "1", "2")).unwrap();
        assert_eq!(old.resource_version(), "1");
        assert_eq!(set.len(), 3);
        assert_eq!(set.get("a", "x").unwrap().resource_version(), "2");
        assert_eq!(set.get("", "x").unwrap().uid(), "3");
        assert!(set.get("a/x", "").is_none() && set.get("a", "y").is_none());
        assert_eq!(set.remove("b", "x").unwrap().uid(), "2");
        assert!(!set.contains("b", "x"));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn budget_caps_the_pool_across_caches() {
        let budget = Arc::new(ObjectBudget::new(2));
        let a = Cache::new(key(), budget.clone());
        let b = Cache::new(key(), budget.clone());
        assert_eq!(a.upsert(obj(Some("ns"), "x", "1", "1")), Ok(Applied::Added));
        assert_eq!(b.upsert(obj(Some("ns"), "y", "2", "2")), Ok(Applied::Added));
        assert!(b.upsert(obj(Some("ns"), "z", "3", "3")).is_err());
        assert_eq!(b.remove(Some("ns"), "y"), Applied::Deleted);
        assert_eq!(budget.used(), 1);
        assert_eq!(b.upsert(obj(Some("ns"), "z", "3", "3")), Ok(Applied::Added));
    }

    #[test]
    fn older_versions_never_replace_newer_ones() {
        let cache = Cache::new(key(), Arc::new(ObjectBudget::new(10)));
        cache.upsert(obj(None, "x", "1", "10")).ok();
        assert_eq!(
            cache.upsert(obj(None, "x", "1", "9")),
            Ok(Applied::Unchanged)
        );
        assert_eq!(
            cache.upsert(obj(None, "x", "1", "11")),
            Ok(Applied::Modified)
        );
        assert_eq!(cache.identities()[0].resource_version, "11");
    }

    #[test]
    fn replace_counts_vanished_objects_and_adjusts_budget() {
        let budget = Arc::new(ObjectBudget::new(10));
        let cache = Cache::new(key(), budget.clone());
        cache.upsert(obj(Some("a"), "x", "1", "1")).ok();
        cache.upsert(obj(Some("a"), "y", "2", "2")).ok();
        let mut fresh = ObjectSet::default();
        fresh.insert(obj(Some("a"), "y", "2", "3"));
        assert_eq!(cache.replace(fresh), Ok(1));
        assert_eq!(budget.used(), 1);
        assert_eq!(cache.view().digest, digest([("2", "3")]));
        cache.clear();
        assert_eq!(budget.used(), 0);
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Upsert(u8, u8, u16),
            Remove(u8, u8),
            Replace(Vec<(u8, u8)>),
            Clear,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..2u8, 0..6u8, 0..50u16).prop_map(|(c, n, rv)| Op::Upsert(c, n, rv)),
                (0..2u8, 0..6u8).prop_map(|(c, n)| Op::Remove(c, n)),
                proptest::collection::vec((0..2u8, 0..6u8), 0..6).prop_map(Op::Replace),
                Just(Op::Clear),
            ]
        }

        proptest! {
            /// Whatever the sequence of events, lists and clears on two caches sharing a budget,
            /// the budget counts exactly the objects cached and never exceeds its cap.
            #[test]
            fn budget_always_equals_the_objects_cached(ops in proptest::collection::vec(op(), 0..60)) {
                let budget = Arc::new(ObjectBudget::new(8));
                let caches = [Cache::new(key(), budget.clone()), Cache::new(key(), budget.clone())];
                for op in ops {
                    match op {
                        Op::Upsert(c, n, rv) => {
                            let _ = caches[usize::from(c)].upsert(obj(Some("ns"), &format!("o{n}"), &format!("u{n}"), &rv.to_string()));
                        }
                        Op::Remove(c, n) => {
                            caches[usize::from(c)].remove(Some("ns"), &format!("o{n}"));
                        }
                        Op::Replace(items) => {
                            let mut by_cache: [ObjectSet; 2] = [ObjectSet::default(), ObjectSet::default()];
                            for (c, n) in items {
                                by_cache[usize::from(c)].insert(obj(Some("ns"), &format!("o{n}"), &format!("u{n}"), "1"));
                            }
                            let [a, b] = by_cache;
                            let _ = caches[0].replace(a);
                            let _ = caches[1].replace(b);
                        }
                        Op::Clear => caches[0].clear(),
                    }
                    let cached = caches[0].len() + caches[1].len();
                    prop_assert_eq!(budget.used(), cached);
                    prop_assert!(cached <= 8);
                    prop_assert_eq!(caches[0].view().count, caches[0].len());
                }
            }
        }
    }
}
