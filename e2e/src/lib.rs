//! Shared harness of the end-to-end tests, the sandbox and the benchmarks.

pub mod tools;
