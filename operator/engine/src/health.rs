//! Health snapshots: what the engine tells the controller (status), the metrics and the admin
//! endpoint about each watch. Published through `tokio::sync::watch` channels, so readers see
//! changes without polling and never block the watchers.

use std::sync::Arc;
use std::time::SystemTime;

use watchpool_api::{ErrorReason, TargetConfig, TargetState};

/// Identifies one watch of a pool: a target of the policy and the namespace it watches
/// (`None` when cluster-wide).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchKey {
    /// The policy's target, shared by the keys of all its namespaces: health snapshots clone
    /// keys often, and a target's namespace list can be long.
    pub target: Arc<TargetConfig>,
    /// The namespace watched, `None` when cluster-wide.
    pub namespace: Option<String>,
}

/// The last failure of a watch.
#[derive(Clone, Debug, PartialEq)]
pub struct LastError {
    /// The failure's category.
    pub reason: ErrorReason,
    /// Never contains object contents.
    pub message: String,
    /// When it happened.
    pub time: SystemTime,
}

/// Cumulative counters of one watch, for metrics (monotonic for the life of the watch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCounters {
    /// Objects added to the cache (by watch events).
    pub added: u64,
    /// Cached objects replaced by a newer version (by watch events).
    pub modified: u64,
    /// Objects removed: DELETED events, and objects found gone by a relist.
    pub deleted: u64,
    /// Bookmarks received.
    pub bookmarks: u64,
    /// Objects that failed to decode and were skipped.
    pub decode_errors: u64,
    /// Requests issued (list pages and watch starts).
    pub requests: u64,
}

/// The health of one watch.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetHealth {
    /// The watch.
    pub key: WatchKey,
    /// Where its state machine is.
    pub state: TargetState,
    /// Objects in its cache.
    pub objects: u64,
    /// The last resourceVersion seen (list, event or bookmark): where a re-watch resumes.
    pub resource_version: Option<String>,
    /// When the current watch connection was established (`None` when not connected).
    pub connected_since: Option<SystemTime>,
    /// When the last ADDED/MODIFIED/DELETED event arrived.
    pub last_event_time: Option<SystemTime>,
    /// When the last bookmark arrived.
    pub last_bookmark_time: Option<SystemTime>,
    /// Watch connections opened after the first one.
    pub reconnects: u64,
    /// Lists after the first one.
    pub relists: u64,
    /// Failures since the stream last delivered an event (0 when healthy).
    pub consecutive_failures: u32,
    /// When the next attempt is due, while waiting out a backoff.
    pub next_retry_time: Option<SystemTime>,
    /// The last failure, kept after recovery.
    pub last_error: Option<LastError>,
    /// Failures by reason since the watch started, for metrics.
    pub errors: Vec<(ErrorReason, u64)>,
    /// Cumulative counters.
    pub counters: WatchCounters,
}

/// CPU use of a pool against its budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuHealth {
    /// Average over the sliding window, in millicores.
    pub used_millis: f64,
    /// The budget, in millicores.
    pub limit_millis: u64,
    /// True while the pool is being delayed to stay under its budget.
    pub throttled: bool,
    /// CPU seconds used by the pool's tasks since it started.
    pub cpu_seconds_total: f64,
    /// Seconds the pool's tasks were held back by the budget since it started.
    pub throttled_seconds_total: f64,
}

/// The health of a whole pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolHealth {
    /// One entry per watch, sorted by key (suspended watches included).
    pub targets: Vec<TargetHealth>,
    /// The pool's CPU use against its budget.
    pub cpu: CpuHealth,
}

/// A read-only view of one watch's cache, for the admin endpoint and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheView {
    /// The watch whose cache this is.
    pub key: WatchKey,
    /// Objects cached.
    pub count: u64,
    /// [`digest`] of the cached objects' (uid, resourceVersion) pairs.
    pub digest: String,
}

/// An order-independent digest of (uid, resourceVersion) pairs: the pairs are sorted by uid,
/// then hashed with 64-bit FNV-1a over `uid \0 resourceVersion \n`. Written by hand because it
/// is ten lines and must be reproduced exactly by tests that list the API server themselves.
pub fn digest<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (uid, rv) in pairs {
        for byte in uid
            .bytes()
            .chain(std::iter::once(0))
            .chain(rv.bytes())
            .chain(std::iter::once(b'\n'))
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn digest_ignores_order_but_not_content() {
        let a = digest([("u1", "1"), ("u2", "2")]);
        let b = digest([("u2", "2"), ("u1", "1")]);
        assert_eq!(a, b);
        assert_ne!(a, digest([("u1", "1"), ("u2", "3")]));
        assert_ne!(a, digest([("u1", "1")]));
        assert_ne!(digest([("u1", "12")]), digest([("u11", "2")]));
    }
}
