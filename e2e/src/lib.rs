//! Shared harness of the end-to-end tests, the sandbox and the benchmarks.
//!
//! A scenario starts an [`env::Env`] (an emulator, or a real cluster), applies policies with the
//! real kubectl, runs the real operator binary ([`operator::Operator`]), drives a
//! [`writer::Writer`], injects a fault and judges the run ([`judge`]) as FAULTS.md says.

pub mod env;
pub mod figures;
pub mod http;
pub mod judge;
pub mod kubectl;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod pools;
pub mod procstat;
pub mod requests;
pub mod sandbox;
pub mod scenario;
pub mod tempdir;
pub mod tools;
pub mod wait;
pub mod writer;
