//! An in-memory Kubernetes API server emulator with fault injection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::Error> {
//! use kube_emulator::{Emulator, EmulatorConfig, Fault, FaultSpec};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! emu.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! let id = emu.faults().add(FaultSpec::new(Fault::DropWatches { after_ms: 0 }).resource("configmaps").count(1));
//! emu.faults().remove(id);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod builtins;
pub mod discovery;
pub mod faults;
pub mod http;
pub mod jsonpath;
mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod prune;
pub mod registry;
pub mod reqlog;
pub mod selector;
mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinHandle;

pub use faults::{
    ActiveFault, ErrorBody, Fault, FaultId, FaultSpec, FutureRvPolicy, RestartRv, Scope,
    WatchListMode,
};
pub use reqlog::{RequestRecord, Stats};
pub use status::ApiError;

use server::Shared;

/// Errors of starting and driving the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the kubeconfig failed.
    #[error("cannot write the kubeconfig {path}")]
    WriteKubeconfig {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Settings of an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to listen on (default `127.0.0.1:0`, any free port).
    pub listen: SocketAddr,
    /// Bookmark cadence of watches that allow bookmarks (default 5 s).
    pub bookmark_interval: Duration,
    /// Events kept for watch resumption (default 100 000); older resourceVersions get 410.
    pub history: usize,
    /// Events a watch may lag behind before it is dropped as a slow consumer (default 4 096).
    pub watch_buffer: usize,
    /// Watch length without `timeoutSeconds` (default 1 800 s).
    pub default_watch_timeout: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bookmark_interval: Duration::from_secs(5),
            history: 100_000,
            watch_buffer: 4096,
            default_watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// A running emulator. Dropping it stops it (every connection is closed).
pub struct Emulator {
    shared: Arc<Shared>,
    stop: tokio_watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Adds and removes faults of a running emulator.
#[derive(Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// Adds a fault (actions such as `restart` and `compact` are carried out at once).
    pub fn add(&self, spec: FaultSpec) -> FaultId {
        server::add_fault(&self.shared, spec)
    }

    /// Removes a fault; false when there is no such fault.
    pub fn remove(&self, id: FaultId) -> bool {
        self.shared.faults.remove(id)
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.shared.faults.clear()
    }

    /// The faults in force, with how often each was applied.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.shared.faults.list()
    }
}

impl Emulator {
    /// Binds and starts serving.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        let listener = server::bind_reuse(config.listen).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = tokio_watch::channel(false);
        let shared = Arc::new(Shared {
            store: store::Store::new(config.history, config.watch_buffer),
            faults: Arc::new(faults::FaultSet::new()),
            log: Arc::new(reqlog::RequestLog::default()),
            config,
            addr,
            kill: tokio_watch::channel(0).0,
            ctrl: ctrl_tx,
            shutting_down: AtomicBool::new(false),
        });
        let task = tokio::spawn(server::accept_loop(
            shared.clone(),
            listener,
            ctrl_rx,
            stop_rx,
        ));
        Ok(Emulator {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig pointing at the emulator (no credentials, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\nusers:\n- name: emulator\n  user: {{}}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\npreferences: {{}}\n",
            self.url()
        )
    }

    /// Writes [`Emulator::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| Error::WriteKubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// The fault controls.
    pub fn faults(&self) -> FaultHandle {
        FaultHandle {
            shared: self.shared.clone(),
        }
    }

    /// Every request served so far (watches carry how they ended once they have).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.records()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.shared.log.stats();
        s.resource_version = self.shared.store.current_rv();
        s.objects = self.shared.store.object_count();
        s
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.current_rv()
    }

    /// Every served resource (built-ins and those registered from CRDs).
    pub fn resources(&self) -> Vec<registry::ResourceInfo> {
        self.shared.store.resources()
    }

    /// Creates an object, as a POST would (namespace from `metadata.namespace`, default `default`).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        objects::create(&self.shared.store, obj)
    }

    /// Creates an object without validating a custom resource against its CRD's schema and CEL
    /// rules (the schema's defaults are still applied), as an API server that does not enforce
    /// them would store it: how tests get bad objects past admission to the operator.
    pub fn create_unvalidated(&self, obj: Value) -> Result<Value, ApiError> {
        objects::create_unvalidated(&self.shared.store, obj)
    }

    /// Replaces an object, as a PUT would; without `metadata.resourceVersion` it is unconditional.
    pub fn update(&self, obj: Value) -> Result<Value, ApiError> {
        objects::update(&self.shared.store, obj, false)
    }

    /// Replaces an object's status, as a PUT on `/status` would.
    pub fn update_status(&self, obj: Value) -> Result<Value, ApiError> {
        objects::update(&self.shared.store, obj, true)
    }

    /// Creates the object or replaces it unconditionally.
    pub fn upsert(&self, obj: Value) -> Result<Value, ApiError> {
        objects::upsert(&self.shared.store, obj).map(|(_, v)| v)
    }

    /// Applies a JSON merge patch (to `/status` when `status` and the kind has that subresource).
    pub fn patch_merge(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: &str,
        name: &str,
        patch: Value,
        status: bool,
    ) -> Result<Value, ApiError> {
        objects::merge_patch(
            &self.shared.store,
            api_version,
            kind_or_plural,
            namespace,
            name,
            patch,
            status,
        )
    }

    /// Deletes an object (finalizers honoured, dependents collected in the background).
    pub fn delete(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        objects::delete(
            &self.shared.store,
            api_version,
            kind_or_plural,
            namespace,
            name,
        )
    }

    /// Gets an object.
    pub fn get(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        objects::get(
            &self.shared.store,
            api_version,
            kind_or_plural,
            namespace,
            name,
        )
    }

    /// Lists objects of a kind in a namespace, or in every namespace with `None`.
    pub fn list(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        objects::list(&self.shared.store, api_version, kind_or_plural, namespace)
    }

    /// Stops serving and closes every connection.
    pub async fn shutdown(mut self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        self.shared.kill.send_modify(|g| *g += 1);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
