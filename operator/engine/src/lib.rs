//! The watch pool engine: one pool per WatchPolicy, one target watcher per (target, namespace),
//! each with a compact cache, health, and a share of the pool's CPU budget.

pub mod backoff;
pub mod client;
pub mod cpu;
pub mod decode;
pub mod health;
pub mod pool;

pub use health::{CacheView, CpuHealth, LastError, PoolHealth, TargetHealth, WatchCounters, WatchKey, digest};
pub use pool::{Pool, PoolHandle, PoolId, PoolOptions};
