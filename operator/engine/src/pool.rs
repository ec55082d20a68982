//! A watch pool: one per WatchPolicy. Owns its target watchers, their caches and its CPU meter.
//!
//! PUBLIC INTERFACE (used by the operator crate; keep these signatures stable):
//! - `Pool::spawn(client, id, config, options) -> PoolHandle`
//! - `PoolHandle::reconfigure(&self, PolicyConfig)`: only targets whose definition changed restart
//! - `PoolHandle::health(&self) -> watch::Receiver<PoolHealth>`
//! - `PoolHandle::caches(&self) -> Vec<CacheView>`
//! - `PoolHandle::shutdown(self).await`: cancels every task and closes every connection
//! - dropping a `PoolHandle` cancels everything too.

use tokio::sync::watch;
use watchpool_api::PolicyConfig;

use crate::health::{CacheView, PoolHealth};

/// Identifies a pool: the namespace and name of its WatchPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    pub namespace: String,
    pub name: String,
}

/// Engine-wide options of a pool that do not come from the policy.
#[derive(Clone, Debug, Default)]
pub struct PoolOptions {}

/// Starts pools.
#[derive(Debug)]
pub struct Pool;

/// The handle the controller keeps for a running pool.
#[derive(Debug)]
pub struct PoolHandle {
    id: PoolId,
    health: watch::Receiver<PoolHealth>,
}

impl Pool {
    /// Starts a pool for `config` on `client`. Must be called inside a tokio runtime.
    pub fn spawn(
        client: kube::Client,
        id: PoolId,
        config: PolicyConfig,
        options: PoolOptions,
    ) -> PoolHandle {
        let _ = (client, config, options);
        let (_tx, health) = watch::channel(PoolHealth::default());
        PoolHandle { id, health }
    }
}

impl PoolHandle {
    /// The policy this pool serves.
    pub fn id(&self) -> &PoolId {
        &self.id
    }

    /// Applies a new configuration in place: only the targets whose definition changed restart.
    pub fn reconfigure(&self, config: PolicyConfig) {
        let _ = config;
    }

    /// The pool's health, updated by the watchers as it changes.
    pub fn health(&self) -> watch::Receiver<PoolHealth> {
        self.health.clone()
    }

    /// A count and digest of each watch's cache.
    pub fn caches(&self) -> Vec<CacheView> {
        Vec::new()
    }

    /// Cancels every task of the pool and waits until they have ended and their connections
    /// are closed.
    pub async fn shutdown(self) {}
}
