//! The real helm 4 against the emulator: install, upgrade, uninstall and install --wait of
//! `charts/watchpool`, each checked against the objects the emulator then holds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup failures should fail loudly

use std::process::Command;

use kube_emulator::{Emulator, EmulatorConfig, Fault, FaultSpec};
use serde_json::Value;
use watchpool_e2e::tempdir::TempDir;
use watchpool_e2e::tools;

const NS: &str = "watchpool-system";

/// An emulator plus the temp dirs helm needs (kubeconfig, cache, config, data).
struct Helm {
    emu: Emulator,
    dir: TempDir,
}

impl Helm {
    async fn start(name: &str) -> Helm {
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let dir = TempDir::new(&format!("helm-{name}")).unwrap();
        emu.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Helm { emu, dir }
    }

    /// Runs helm with `args`; returns (success, stdout + stderr).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let chart = tools::workspace_root().join("charts").join("watchpool");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("CHART", &chart.to_string_lossy()))
            .collect();
        let out = Command::new(tools::helm())
            .args(&args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HELM_CACHE_HOME", self.dir.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.dir.path().join("config"))
            .env("HELM_DATA_HOME", self.dir.path().join("data"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "helm {args:?} failed:\n{text}");
        text
    }

    fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.emu.get(api_version, kind, ns, name).ok()
    }

    fn release_secrets(&self) -> Vec<String> {
        self.emu
            .list("v1", "Secret", Some(NS))
            .unwrap()
            .iter()
            .filter(|s| s["type"] == "helm.sh/release.v1")
            .map(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn args_of(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn watch_rules(role: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if verbs.contains(&"watch") {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    out.push((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn assert_exists(helm: &Helm, api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
    helm.get(api_version, kind, ns, name)
        .unwrap_or_else(|| panic!("{kind} {ns}/{name} missing after helm install"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall_of_the_chart_against_the_emulator() {
    let helm = Helm::start("lifecycle").await;
    let out = helm.ok(&[
        "install",
        "watchpool",
        "CHART",
        "--namespace",
        NS,
        "--create-namespace",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");

    // The CRD from the chart's crds/ folder, served at once.
    let crd = assert_exists(
        &helm,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "",
        "watchpolicies.watchpool.dev",
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "wp");
    // The Deployment with the rendered security context and probes.
    let deployment = assert_exists(&helm, "apps/v1", "Deployment", NS, "watchpool");
    let c = container(&deployment);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert!(
        !args_of(&deployment)
            .iter()
            .any(|a| a.starts_with("--leader-election=true"))
    );
    assert_exists(&helm, "v1", "ServiceAccount", NS, "watchpool");
    assert_exists(&helm, "v1", "Service", NS, "watchpool");
    // RBAC: list/watch on the configured kinds only, never a wildcard.
    let role = assert_exists(
        &helm,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "",
        "watchpool",
    );
    let watched = watch_rules(&role);
    assert!(
        watched.contains(&(String::new(), "pods".into())),
        "{watched:?}"
    );
    assert!(
        watched.contains(&("watchpool.dev".into(), "watchpolicies".into())),
        "{watched:?}"
    );
    assert!(
        !watched.iter().any(|(g, r)| g == "*" || r == "*"),
        "{watched:?}"
    );
    assert_exists(
        &helm,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "",
        "watchpool",
    );
    assert!(
        helm.get("policy/v1", "PodDisruptionBudget", NS, "watchpool")
            .is_none()
    );
    assert_eq!(
        helm.release_secrets(),
        vec!["sh.helm.release.v1.watchpool.v1".to_owned()]
    );

    // Upgrade to two replicas: leader election on and a PodDisruptionBudget.
    let out = helm.ok(&[
        "upgrade",
        "watchpool",
        "CHART",
        "--namespace",
        NS,
        "--set",
        "replicaCount=2",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deployment = assert_exists(&helm, "apps/v1", "Deployment", NS, "watchpool");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(
        args_of(&deployment)
            .iter()
            .any(|a| a.starts_with("--leader-election")),
        "{:?}",
        args_of(&deployment)
    );
    assert_exists(&helm, "policy/v1", "PodDisruptionBudget", NS, "watchpool");
    let mut secrets = helm.release_secrets();
    secrets.sort();
    assert_eq!(
        secrets,
        vec![
            "sh.helm.release.v1.watchpool.v1".to_owned(),
            "sh.helm.release.v1.watchpool.v2".to_owned()
        ]
    );
    let listed = helm.ok(&["list", "--namespace", NS]);
    assert!(
        listed.contains("watchpool") && listed.contains("deployed"),
        "{listed}"
    );

    // Uninstall: the release's objects and secrets go; the CRD stays (helm keeps crds/).
    helm.ok(&["uninstall", "watchpool", "--namespace", NS]);
    assert!(helm.get("apps/v1", "Deployment", NS, "watchpool").is_none());
    assert!(
        helm.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            "watchpool"
        )
        .is_none()
    );
    assert!(
        helm.get("policy/v1", "PodDisruptionBudget", NS, "watchpool")
            .is_none()
    );
    assert!(
        helm.release_secrets().is_empty(),
        "{:?}",
        helm.release_secrets()
    );
    assert!(
        helm.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "watchpolicies.watchpool.dev"
        )
        .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_wait_succeeds_once_the_deployment_reports_ready() {
    let helm = Helm::start("wait").await;
    helm.emu.faults().add(FaultSpec::new(Fault::AutoReady {
        kinds: vec!["Deployment".into()],
    }));
    let out = helm.ok(&[
        "install",
        "watchpool",
        "CHART",
        "--namespace",
        NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deployment = assert_exists(&helm, "apps/v1", "Deployment", NS, "watchpool");
    assert_eq!(
        deployment["status"]["readyReplicas"],
        deployment["spec"]["replicas"]
    );
}

/// Without a ready Deployment, `--wait` must not report success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_wait_times_out_when_the_deployment_never_becomes_ready() {
    let helm = Helm::start("nowait").await;
    let (ok, out) = helm.run(&[
        "install",
        "watchpool",
        "CHART",
        "--namespace",
        NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "5s",
    ]);
    assert!(
        !ok,
        "helm --wait succeeded without a ready Deployment:\n{out}"
    );
}
