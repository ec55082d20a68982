//! The environment of one scenario: a cluster (an emulator started for the test, or the real
//! cluster named by `WATCHPOOL_E2E_KUBECONFIG`), a fresh namespace, the real kubectl with its
//! own cache dir, the WatchPolicy CRD installed and Established, and a kube client for the
//! writer and for fresh lists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use watchpool_api::WatchPolicy;

use crate::kubectl::{Kubectl, KubectlError};
use crate::operator::{Operator, OperatorError, OperatorOptions};
use crate::policy::{self, TestPolicy};
use crate::tempdir::TempDir;
use crate::wait::{self, Poll, WaitTimeout};
use crate::writer::Writer;

/// The variable that switches the suite to a real cluster.
pub const REAL_CLUSTER_ENV: &str = "WATCHPOOL_E2E_KUBECONFIG";

/// The name of the WatchPolicy CRD.
pub const CRD_NAME: &str = "watchpolicies.watchpool.dev";

/// Errors setting up or using the environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A local file or directory operation failed.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The emulator failed to start.
    #[error("cannot start the emulator: {0}")]
    Emulator(String),
    /// The kubeconfig could not be loaded.
    #[error("cannot load the kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    /// A kube client request failed.
    #[error("{what}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// kubectl failed.
    #[error(transparent)]
    Kubectl(#[from] KubectlError),
    /// kubectl printed an object that does not decode.
    #[error("cannot decode {what}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The operator failed.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// A wait did not succeed in time.
    #[error(transparent)]
    Wait(#[from] WaitTimeout),
}

/// Where the scenario runs.
pub enum Cluster {
    /// An emulator owned by this test.
    Emulator(Box<kube_emulator::Emulator>),
    /// The real cluster of `WATCHPOOL_E2E_KUBECONFIG`.
    Real,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cluster::Emulator(e) => write!(f, "Emulator({})", e.url()),
            Cluster::Real => write!(f, "Real"),
        }
    }
}

/// One scenario's environment. Dropping it removes what it made (the emulator stops; on a
/// real cluster, the namespace is deleted after the finalizers of its policies are removed).
pub struct Env {
    /// The namespace of the scenario (policies and watched objects live here).
    pub namespace: String,
    /// The real kubectl, pointed at the cluster.
    pub kubectl: Kubectl,
    /// A client for the writer and fresh lists (User-Agent `watchpool-e2e`).
    pub client: kube::Client,
    kubeconfig: PathBuf,
    cluster: Cluster,
    dir: TempDir,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvError {
    let what = what.into();
    move |source| EnvError::Io { what, source }
}

fn short_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:05x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xfffff
    )
}

/// Turns a test name into a DNS-1123 label prefix.
fn label(test: &str) -> String {
    let mut out: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(40);
    out.trim_matches('-').to_owned()
}

/// Options of the emulator a scenario starts.
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// Bookmark cadence of the emulator (shorter than the policies' `idle`).
    pub bookmark_interval: Duration,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

impl Env {
    /// True when the suite runs against a real cluster.
    pub fn real_cluster() -> bool {
        std::env::var_os(REAL_CLUSTER_ENV).is_some_and(|v| !v.is_empty())
    }

    /// Starts the environment of scenario `test` with the default options.
    pub async fn start(test: &str) -> Result<Self, EnvError> {
        Self::start_with(test, EnvOptions::default()).await
    }

    /// Starts the environment of scenario `test`.
    pub async fn start_with(test: &str, options: EnvOptions) -> Result<Self, EnvError> {
        let dir = TempDir::new(&label(test)).map_err(io("create the temp dir"))?;
        let (cluster, kubeconfig) = match std::env::var_os(REAL_CLUSTER_ENV) {
            Some(path) if !path.is_empty() => (Cluster::Real, PathBuf::from(path)),
            _ => {
                let config = kube_emulator::EmulatorConfig {
                    bookmark_interval: options.bookmark_interval,
                    ..kube_emulator::EmulatorConfig::default()
                };
                let emulator = kube_emulator::Emulator::start(config)
                    .await
                    .map_err(|e| EnvError::Emulator(e.to_string()))?;
                let path = dir.path().join("kubeconfig");
                emulator
                    .write_kubeconfig(&path)
                    .map_err(|e| EnvError::Emulator(e.to_string()))?;
                (Cluster::Emulator(Box::new(emulator)), path)
            }
        };
        let cache = dir.path().join("kubectl-cache");
        std::fs::create_dir_all(&cache).map_err(io("create the kubectl cache dir"))?;
        let kubectl = Kubectl::new(crate::tools::kubectl(), &kubeconfig, &cache);
        let client = client_for(&kubeconfig).await?;
        let namespace = format!("{}-{}", label(test), short_suffix());
        let env = Self {
            namespace,
            kubectl,
            client,
            kubeconfig,
            cluster,
            dir,
        };
        env.install_crd().await?;
        env.create_namespace(&env.namespace).await?;
        Ok(env)
    }

    /// The emulator, when the scenario runs on one.
    pub fn emulator(&self) -> Option<&kube_emulator::Emulator> {
        match &self.cluster {
            Cluster::Emulator(e) => Some(e),
            Cluster::Real => None,
        }
    }

    /// The emulator; on a real cluster prints why the scenario stops here and returns `None`
    /// (the one allowed skip: faults can only be injected into the emulator).
    pub fn require_emulator(&self, scenario: &str) -> Option<&kube_emulator::Emulator> {
        let emulator = self.emulator();
        if emulator.is_none() {
            println!(
                "E2E-SKIP scenario={scenario} reason=\"needs emulator fault injection; {REAL_CLUSTER_ENV} is set\""
            );
        }
        emulator
    }

    /// The kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The scenario's temp dir (logs live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Applies the committed CRD manifest and waits until it is Established.
    pub async fn install_crd(&self) -> Result<(), EnvError> {
        let path = crate::tools::workspace_root()
            .join("crds")
            .join("watchpool.dev_watchpolicies.yaml");
        let yaml =
            std::fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
        self.kubectl.apply(&yaml).await?;
        self.wait_crd_established().await
    }

    /// Waits until the WatchPolicy CRD is Established.
    pub async fn wait_crd_established(&self) -> Result<(), EnvError> {
        self.kubectl
            .run(
                &[
                    "wait",
                    "--for=condition=Established",
                    &format!("crd/{CRD_NAME}"),
                    "--timeout=20s",
                ],
                None,
            )
            .await?;
        Ok(())
    }

    /// Creates namespace `name` (with `kubectl apply`).
    pub async fn create_namespace(&self, name: &str) -> Result<(), EnvError> {
        let manifest = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        });
        self.kubectl.apply(&manifest.to_string()).await?;
        Ok(())
    }

    /// Operator options for this environment: trusts the scenario's namespace, runs in it.
    pub fn operator_options(&self) -> OperatorOptions {
        OperatorOptions {
            trusted_namespaces: vec![self.namespace.clone()],
            pod_namespace: Some(self.namespace.clone()),
            ..OperatorOptions::default()
        }
    }

    /// Starts the real operator binary with `options` and waits for `/readyz`.
    pub async fn start_operator(&self, options: &OperatorOptions) -> Result<Operator, EnvError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let operator = Operator::spawn(&self.kubeconfig, self.dir.path(), options)?;
            match operator.wait_ready(Duration::from_secs(20)).await {
                Ok(_) => return Ok(operator),
                // The free port picked for the admin server may have been taken in between by
                // another test: the operator exits; start it again on another port.
                Err(OperatorError::Exited { .. }) if attempt < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies a policy with kubectl.
    pub async fn apply_policy(&self, policy: &TestPolicy) -> Result<(), EnvError> {
        self.kubectl.apply(&policy.manifest()).await?;
        Ok(())
    }

    /// `kubectl get wp <name> -o json`, decoded.
    pub async fn get_policy(&self, name: &str) -> Result<WatchPolicy, EnvError> {
        let value = self
            .kubectl
            .json(&["get", "wp", name, "-n", &self.namespace])
            .await?;
        serde_json::from_value(value).map_err(|source| EnvError::Decode {
            what: format!("WatchPolicy {name}"),
            source,
        })
    }

    /// Polls `kubectl get wp <name>` until `check` holds; returns the policy and the time taken.
    pub async fn wait_policy(
        &self,
        name: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&WatchPolicy) -> bool,
    ) -> Result<(WatchPolicy, Duration), EnvError> {
        let check = &check;
        let result = wait::until(
            &format!("policy {name}: {what}"),
            deadline,
            Duration::from_millis(150),
            || async move {
                match self.get_policy(name).await {
                    Ok(policy) if check(&policy) => Poll::Ready(policy),
                    Ok(policy) => Poll::Pending(policy::summary(&policy)),
                    Err(e) => Poll::Pending(e.to_string()),
                }
            },
        )
        .await?;
        Ok(result)
    }

    /// Waits until policy `name` is `Ready=True` for its current generation.
    pub async fn wait_ready(&self, name: &str, deadline: Duration) -> Result<Duration, EnvError> {
        let (_, took) = self
            .wait_policy(name, "Ready=True", deadline, policy::is_ready)
            .await?;
        Ok(took)
    }

    /// A writer of ConfigMaps `<prefix>-<n>` in the scenario's namespace.
    pub fn writer(&self, prefix: &str) -> Writer {
        Writer::new(self.client.clone(), &self.namespace, prefix)
    }

    /// Count and digest of a fresh list of the ConfigMaps of `namespace`, as the server has
    /// them now.
    pub async fn fresh_configmaps(&self, namespace: &str) -> Result<(u64, String), EnvError> {
        self.fresh_list("v1", "ConfigMap", namespace, None).await
    }

    /// Count and digest (uid, resourceVersion) of a fresh list of `apiVersion`/`kind` in
    /// `namespace` (`""`: cluster-wide), optionally with a label selector.
    pub async fn fresh_list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<(u64, String), EnvError> {
        fresh_list(
            &self.client,
            api_version,
            kind,
            namespace,
            label_selector,
            None,
        )
        .await
    }

    /// Keeps the temp dir (kubeconfig, logs) after the test, for diagnosis.
    pub fn keep_dir(&mut self) {
        self.dir.keep();
    }
}

/// Count and digest (uid, resourceVersion) of a fresh list of `apiVersion`/`kind` in
/// `namespace` (`""`: cluster-wide; a cluster-scoped kind is always listed cluster-wide),
/// with optional label and field selectors: what a cache of the same watch must hold.
pub async fn fresh_list(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
) -> Result<(u64, String), EnvError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let what = format!("list {kind} in {namespace:?}");
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|source| EnvError::Kube {
            what: what.clone(),
            source,
        })?;
    let cluster_scoped = caps.scope == kube::discovery::Scope::Cluster;
    let api: Api<kube::api::DynamicObject> = if namespace.is_empty() || cluster_scoped {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    let mut params = ListParams::default();
    if let Some(selector) = label_selector {
        params = params.labels(selector);
    }
    if let Some(selector) = field_selector {
        params = params.fields(selector);
    }
    let list = api
        .list(&params)
        .await
        .map_err(|source| EnvError::Kube { what, source })?;
    let pairs: Vec<(String, String)> = list
        .items
        .iter()
        .map(|o| {
            (
                o.metadata.uid.clone().unwrap_or_default(),
                o.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    let digest = watchpool_engine::digest(pairs.iter().map(|(u, r)| (u.as_str(), r.as_str())));
    Ok((pairs.len() as u64, digest))
}

/// A kube client for `kubeconfig`, sending User-Agent `watchpool-e2e`.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, EnvError> {
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| EnvError::Kubeconfig {
        path: kubeconfig.to_owned(),
        message: e.to_string(),
    })?;
    let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| EnvError::Kubeconfig {
            path: kubeconfig.to_owned(),
            message: e.to_string(),
        })?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("watchpool-e2e"),
    ));
    kube::Client::try_from(config).map_err(|source| EnvError::Kube {
        what: "build the client".into(),
        source,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.keep();
            eprintln!("scenario files kept in {}", self.dir.path().display());
        }
        if matches!(self.cluster, Cluster::Real) {
            // Policies of a stopped operator keep their finalizer: remove it so that the
            // namespace can go.
            let kubectl = |args: &[&str]| {
                let _ = std::process::Command::new(crate::tools::kubectl())
                    .arg("--kubeconfig")
                    .arg(&self.kubeconfig)
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            };
            if let Ok(out) = std::process::Command::new(crate::tools::kubectl())
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["get", "wp", "-n", &self.namespace, "-o", "name"])
                .output()
            {
                for name in String::from_utf8_lossy(&out.stdout).lines() {
                    kubectl(&[
                        "patch",
                        name,
                        "-n",
                        &self.namespace,
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ]);
                }
            }
            kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
        }
    }
}
