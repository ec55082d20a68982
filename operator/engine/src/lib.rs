//! The watch pool engine: one pool per WatchPolicy, one target watcher per (target, namespace),
//! each with a compact cache, health, and a share of the pool's CPU budget.

pub mod backoff;
pub mod cache;
pub mod client;
pub mod cpu;
pub mod crds;
pub mod decode;
pub mod discovery;
pub mod event;
pub mod guard;
pub mod health;
pub mod hub;
pub mod pool;
pub mod request;
pub mod watcher;

pub use health::{
    CacheView, CpuHealth, LastError, PoolHealth, TargetHealth, WatchCounters, WatchKey, digest,
};
pub use pool::{Pool, PoolHandle, PoolId, PoolOptions};
