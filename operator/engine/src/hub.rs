//! Collects the health of a pool's watches and publishes it on a `tokio::sync::watch` channel,
//! coalesced: state changes are published at once, counter changes at most every
//! [`PUBLISH_INTERVAL`] by the pool's publisher task, which sleeps until a counter changes (see
//! [`Hub::changed`]) so that an idle pool does not wake four times a second for nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use watchpool_api::TargetState;

use crate::health::{CpuHealth, PoolHealth, TargetHealth, WatchKey};

/// Longest time a counter change waits before it is published.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// Transitions remembered per pool (oldest dropped first).
const TRANSITION_LOG: usize = 512;

/// A change of the CPU average (millicores) published at once.
const CPU_SIGNIFICANT_MILLIS: f64 = 1.0;

/// Longest time a smaller change of the CPU figures waits to be published.
pub const CPU_REFRESH: Duration = Duration::from_secs(5);

/// One state change of one watch, as recorded by the pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The watch.
    pub key: WatchKey,
    /// The state entered.
    pub state: TargetState,
    /// When.
    pub at: Instant,
}

/// The health slot of one watch, written by its watcher only.
#[derive(Debug)]
pub struct Slot {
    health: Mutex<TargetHealth>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, TargetHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the current health.
    pub fn snapshot(&self) -> TargetHealth {
        self.lock().clone()
    }
}

/// A fresh health record in state `state`.
pub fn new_target_health(key: WatchKey, state: TargetState) -> TargetHealth {
    TargetHealth {
        key,
        state,
        objects: 0,
        resource_version: None,
        connected_since: None,
        last_event_time: None,
        last_bookmark_time: None,
        reconnects: 0,
        relists: 0,
        consecutive_failures: 0,
        next_retry_time: None,
        last_error: None,
        errors: Vec::new(),
        counters: Default::default(),
    }
}

/// The pool's health collector.
#[derive(Debug)]
pub struct Hub {
    slots: Mutex<BTreeMap<WatchKey, Arc<Slot>>>,
    transitions: Mutex<VecDeque<Transition>>,
    dirty: AtomicBool,
    /// Signalled when `dirty` goes from false to true outside the publisher.
    changed: Notify,
    /// The CPU figures to publish, and when they were last changed.
    cpu: Mutex<(CpuHealth, Instant)>,
    tx: watch::Sender<PoolHealth>,
}

impl Hub {
    /// A hub with no watches.
    pub fn new() -> Arc<Self> {
        let (tx, _rx) = watch::channel(PoolHealth::default());
        Arc::new(Self {
            slots: Mutex::new(BTreeMap::new()),
            transitions: Mutex::new(VecDeque::new()),
            dirty: AtomicBool::new(false),
            changed: Notify::new(),
            cpu: Mutex::new((CpuHealth::default(), Instant::now())),
            tx,
        })
    }

    /// A receiver of the published health.
    pub fn subscribe(&self) -> watch::Receiver<PoolHealth> {
        self.tx.subscribe()
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<WatchKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) the slot of `key`, in `state`, and publishes.
    pub fn add(&self, key: WatchKey, state: TargetState) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            health: Mutex::new(new_target_health(key.clone(), state)),
        });
        self.slots().insert(key.clone(), slot.clone());
        self.record_transition(&key, state);
        self.publish();
        slot
    }

    /// Removes the slot of `key` and publishes.
    pub fn remove(&self, key: &WatchKey) {
        self.slots().remove(key);
        self.publish();
    }

    /// The slot of `key`, if any.
    pub fn slot(&self, key: &WatchKey) -> Option<Arc<Slot>> {
        self.slots().get(key).cloned()
    }

    /// Updates `slot` with `f`. A state change is recorded and published at once; other
    /// changes are left to the publisher task.
    pub fn update(&self, slot: &Slot, f: impl FnOnce(&mut TargetHealth)) {
        let (key, state, changed) = {
            let mut health = slot.lock();
            let before = health.state;
            f(&mut health);
            (
                (before != health.state).then(|| health.key.clone()),
                health.state,
                before != health.state,
            )
        };
        if changed {
            if let Some(key) = key {
                self.record_transition(&key, state);
            }
            self.publish();
        } else if !self.dirty.swap(true, Ordering::AcqRel) {
            // The first change since the last publication wakes the publisher; later ones
            // wait for it.
            self.changed.notify_one();
        }
    }

    /// Completes when a counter changed since the last publication (at once if one changed
    /// while nobody was waiting).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn record_transition(&self, key: &WatchKey, state: TargetState) {
        let mut log = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if log.len() >= TRANSITION_LOG {
            log.pop_front();
        }
        log.push_back(Transition {
            key: key.clone(),
            state,
            at: Instant::now(),
        });
    }

    /// Every state change recorded so far (the most recent [`TRANSITION_LOG`]).
    pub fn transitions(&self) -> Vec<Transition> {
        self.transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Sets the CPU part of the health (published with the next snapshot).
    /// Small fluctuations of the figures are published only with other changes, or at the
    /// latest after [`CPU_REFRESH`], so that an idle pool does not publish continuously.
    pub fn set_cpu(&self, cpu: CpuHealth) {
        let mut current = self.cpu.lock().unwrap_or_else(PoisonError::into_inner);
        let (old, published_at) = *current;
        let significant = cpu.throttled != old.throttled
            || cpu.limit_millis != old.limit_millis
            || (cpu.used_millis - old.used_millis).abs() >= CPU_SIGNIFICANT_MILLIS
            || published_at.elapsed() >= CPU_REFRESH;
        if significant && cpu != old {
            *current = (cpu, Instant::now());
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Publishes if anything changed since the last publication.
    pub fn publish_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            self.publish();
        }
    }

    /// Builds a snapshot and publishes it now.
    pub fn publish(&self) {
        self.dirty.store(false, Ordering::Release);
        let targets: Vec<TargetHealth> = self.slots().values().map(|s| s.snapshot()).collect();
        let cpu = self.cpu.lock().unwrap_or_else(PoisonError::into_inner).0;
        let snapshot = PoolHealth { targets, cpu };
        self.tx.send_if_modified(|current| {
            if *current == snapshot {
                false
            } else {
                *current = snapshot;
                true
            }
        });
    }
}
