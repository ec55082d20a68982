//! Notices CustomResourceDefinitions appearing, so that a target whose kind is `NotFound` is
//! picked up within moments of its CRD being (re-)created instead of after its full backoff.
//!
//! The pool starts, lazily (the first time one of its targets is `NotFound`), one metadata-only
//! watch of `apiextensions.k8s.io/v1` CustomResourceDefinitions, run by the same
//! [`Watcher`](crate::watcher::Watcher) as any target (so it has the same deadlines, backoff and
//! quiet logging; without RBAC for CRDs it simply stays `Forbidden` and targets fall back to
//! their backoff). Every CRD added or changed bumps a counter that waiting targets watch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use watchpool_api::{NamespaceScope, TargetConfig, TargetState};

use crate::cache::{Cache, ObjectBudget};
use crate::health::WatchKey;
use crate::hub::Hub;
use crate::watcher::{WatchContext, Watcher};

/// The watch key of the CRD watch.
pub fn crd_key() -> WatchKey {
    WatchKey {
        target: Arc::new(TargetConfig {
            api_version: "apiextensions.k8s.io/v1".into(),
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            kind: "CustomResourceDefinition".into(),
            scope: NamespaceScope::All,
            label_selector: None,
            field_selector: None,
            metadata_only: true,
        }),
        namespace: None,
    }
}

/// The pool's CRD change signal.
#[derive(Debug)]
pub struct CrdSignal {
    changes: Arc<watch::Sender<u64>>,
    started: AtomicBool,
    context: Mutex<Option<WatchContext>>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl CrdSignal {
    /// A signal whose watch, once started, runs with `context` until `cancel`.
    pub fn new(context: WatchContext, cancel: CancellationToken) -> Arc<Self> {
        let (changes, _) = watch::channel(0);
        Arc::new(Self {
            changes: Arc::new(changes),
            started: AtomicBool::new(false),
            context: Mutex::new(Some(context)),
            cancel,
            task: Mutex::new(None),
        })
    }

    /// A receiver of CRD changes; starts the CRD watch the first time.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        if !self.started.swap(true, Ordering::AcqRel) {
            self.start();
        }
        self.changes.subscribe()
    }

    fn start(&self) {
        let Some(context) = self
            .context
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let key = crd_key();
        // Its own budget and hub: CRDs count neither against the pool's objects nor in its
        // published health.
        let cache = Cache::new(key.clone(), Arc::new(ObjectBudget::new(u64::MAX)))
            .with_change_signal(self.changes.clone());
        let hub = Hub::new();
        let slot = hub.add(key.clone(), TargetState::Pending);
        let meter = context.meter.clone();
        let context = WatchContext {
            hub,
            crds: None,
            ..context
        };
        let watcher = Watcher::new(context, key, cache, slot);
        let token = self.cancel.clone();
        let task = tokio::spawn(meter.metered(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = watcher.run() => {}
            }
        }));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Stops the CRD watch; returns its task to await.
    pub fn stop(&self) -> Option<JoinHandle<()>> {
        self.cancel.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = &task {
            task.abort();
        }
        task
    }
}
