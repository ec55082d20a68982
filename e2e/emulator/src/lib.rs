//! An in-memory Kubernetes API server emulator with fault injection.

pub mod jsonpath;
pub mod openapi;
pub mod registry;
pub mod table;
