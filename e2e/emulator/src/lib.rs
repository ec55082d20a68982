//! An in-memory Kubernetes API server emulator with fault injection.

pub mod registry;
