//! The workload of the scenarios: ConfigMaps carrying a sequence number, created, changed and
//! deleted before, during and after a fault, through the API like any client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

/// What a writer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Objects created.
    pub created: u64,
    /// Objects changed.
    pub updated: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Writes the API refused or that failed on the wire (e.g. while the server was down).
    pub failed: u64,
}

/// Writes ConfigMaps `<prefix>-<n>` in one namespace; each carries `data.seq`, the writer's
/// sequence number at its last write.
#[derive(Debug)]
pub struct Writer {
    api: Api<ConfigMap>,
    prefix: String,
    next_name: u64,
    seq: u64,
    live: BTreeMap<u64, String>,
    stats: WriterStats,
}

impl Writer {
    /// A writer of ConfigMaps named `<prefix>-<n>` through `client` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, prefix: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            prefix: prefix.into(),
            next_name: 0,
            seq: 0,
            live: BTreeMap::new(),
            stats: WriterStats::default(),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Names of the objects it created and has not deleted.
    pub fn live(&self) -> Vec<String> {
        self.live.values().cloned().collect()
    }

    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    /// Creates one ConfigMap. Returns false when the write failed.
    pub async fn create(&mut self) -> bool {
        let n = self.next_name;
        self.next_name += 1;
        let name = format!("{}-{n}", self.prefix);
        let seq = self.next_seq();
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("e2e-writer".to_owned(), self.prefix.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some([("seq".to_owned(), seq)].into()),
            ..ConfigMap::default()
        };
        match self.api.create(&PostParams::default(), &cm).await {
            Ok(_) => {
                self.live.insert(n, name);
                self.stats.created += 1;
                true
            }
            Err(_) => {
                self.stats.failed += 1;
                false
            }
        }
    }

    /// Changes the oldest live object (a new `data.seq`). Returns false when there is none or
    /// the write failed.
    pub async fn update(&mut self) -> bool {
        let Some(name) = self.live.values().next().cloned() else {
            return false;
        };
        let seq = self.next_seq();
        let patch = serde_json::json!({"data": {"seq": seq}});
        match self
            .api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                self.stats.updated += 1;
                true
            }
            Err(_) => {
                self.stats.failed += 1;
                false
            }
        }
    }

    /// Deletes the oldest live object. Returns false when there is none or the write failed.
    pub async fn delete(&mut self) -> bool {
        let Some((&n, name)) = self.live.iter().next() else {
            return false;
        };
        let name = name.clone();
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.live.remove(&n);
                self.stats.deleted += 1;
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.live.remove(&n);
                true
            }
            Err(_) => {
                self.stats.failed += 1;
                false
            }
        }
    }

    /// Creates `n` objects.
    pub async fn create_many(&mut self, n: usize) {
        for _ in 0..n {
            self.create().await;
        }
    }

    /// One round of churn: create two, change one, delete one (the population grows by one).
    pub async fn churn(&mut self) {
        self.create().await;
        self.create().await;
        self.update().await;
        self.delete().await;
    }
}

/// A writer running in the background, one churn round per `interval`, until stopped.
#[derive(Debug)]
pub struct BackgroundWriter {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Writer>,
}

impl BackgroundWriter {
    /// Starts churning with `writer` every `interval`.
    pub fn start(mut writer: Writer, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let stop = stop.clone();
            let rounds = rounds.clone();
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    // Each write is bounded so that a stalled server cannot hold the writer.
                    let _ = tokio::time::timeout(Duration::from_secs(5), writer.churn()).await;
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                writer
            }
        });
        Self { stop, rounds, task }
    }

    /// Rounds done so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Stops after the current round and gives the writer back.
    pub async fn stop(self) -> Option<Writer> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.ok()
    }
}
