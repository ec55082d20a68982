//! Tests of the Helm chart `charts/watchpool` with the real helm 4: lint, render with default,
//! HA and extended values, and assertions on the rendered objects (security context, RBAC,
//! probes, downward API, leader election, optional objects), on the values schema, on the CRD
//! copy and on the Dockerfile the default image is built from. helm is never pointed at a
//! cluster: `helm template` and `helm install --dry-run=client` render locally.
// Test code: a failed unwrap or expect is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use watchpool_e2e::tools;

/// Release name used in every render.
const RELEASE: &str = "wp";
/// Release namespace used in every render.
const NAMESPACE: &str = "watchpool-system";
/// The full name of the release's objects (`<release>-<chart>`).
const FULLNAME: &str = "wp-watchpool";

fn chart_dir() -> PathBuf {
    tools::workspace_root().join("charts").join("watchpool")
}

/// Runs the real helm with `args`, `values_yaml` on stdin (for `-f -`), a private helm home and
/// no reachable cluster.
fn helm(args: &[&str], values_yaml: &str) -> Output {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chart-helm-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(tools::helm())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-such-kubeconfig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helm starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(values_yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` of the chart with `values_yaml`; the error output when helm refuses.
fn try_render(values_yaml: &str) -> Result<Vec<Value>, String> {
    let chart = chart_dir();
    let out = helm(
        &[
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "-f",
            "-",
        ],
        values_yaml,
    );
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    let rendered = text(&out.stdout);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered)
        .unwrap_or_else(|e| panic!("rendered chart is not valid YAML: {e}\n{rendered}"));
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// `helm template` that must succeed.
fn render(values_yaml: &str) -> Vec<Value> {
    try_render(values_yaml).unwrap_or_else(|e| panic!("helm template failed:\n{e}"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, got {}",
        found.len()
    );
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    let containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "the operator pod has one container");
    &containers[0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// (apiGroup, resource) pairs granted `list` and `watch` by the ClusterRole, other than the
/// operator's own resource.
fn watchable_grants(docs: &[Value]) -> BTreeSet<(String, String)> {
    let role = one(docs, "ClusterRole");
    let mut grants = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs = strings(&rule["verbs"]);
        if !(verbs.contains(&"list".to_owned()) || verbs.contains(&"watch".to_owned())) {
            continue;
        }
        for group in strings(&rule["apiGroups"]) {
            if group == "watchpool.dev" {
                continue;
            }
            for resource in strings(&rule["resources"]) {
                grants.insert((group.clone(), resource));
            }
        }
    }
    grants
}

fn pairs(list: &[(&str, &[&str])]) -> BTreeSet<(String, String)> {
    list.iter()
        .flat_map(|(g, rs)| rs.iter().map(move |r| ((*g).to_owned(), (*r).to_owned())))
        .collect()
}

fn default_watchable() -> BTreeSet<(String, String)> {
    pairs(&[
        (
            "",
            &["pods", "services", "configmaps", "secrets", "namespaces"],
        ),
        (
            "apps",
            &["deployments", "statefulsets", "daemonsets", "replicasets"],
        ),
        ("batch", &["jobs", "cronjobs"]),
        ("networking.k8s.io", &["ingresses"]),
        ("discovery.k8s.io", &["endpointslices"]),
    ])
}

/// The operator's own watch of CRDs (metadata only), on by default.
fn crd_watch() -> BTreeSet<(String, String)> {
    pairs(&[("apiextensions.k8s.io", &["customresourcedefinitions"])])
}

const HA_VALUES: &str = "replicaCount: 2\n";

/// The chart's example values files (`charts/watchpool/ci/*-values.yaml`, also what
/// chart-testing lints), with an empty values file first: (name, contents).
fn values_sets() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/watchpool/ci exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "HA and full example values: {files:?}");
    let mut sets = vec![("defaults".to_owned(), String::new())];
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        sets.push((name, std::fs::read_to_string(&file).unwrap()));
    }
    sets
}

// ---------------------------------------------------------------------------------------------
// helm lint
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_lint_passes_with_default_values() {
    let chart = chart_dir();
    let out = helm(&["lint", chart.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "helm lint failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("0 chart(s) failed"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn helm_lint_strict_passes_with_default_ha_and_full_values() {
    let chart = chart_dir();
    for (name, values) in values_sets() {
        let out = helm(
            &["lint", "--strict", chart.to_str().unwrap(), "-f", "-"],
            &values,
        );
        assert!(
            out.status.success(),
            "helm lint --strict failed with {name}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn ha_example_values_turn_on_leader_election() {
    let (_, ha) = values_sets()
        .into_iter()
        .find(|(name, _)| name == "ha-values.yaml")
        .expect("ci/ha-values.yaml");
    let docs = render(&ha);
    assert!(args(&docs).contains(&"--leader-election".to_owned()));
    assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Pod security and wiring
// ---------------------------------------------------------------------------------------------

#[test]
fn container_runs_non_root_read_only_without_capabilities_or_privilege_escalation() {
    let docs = render("");
    let sc = &container(&docs)["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), vec!["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_null(),
        "no capability is added back"
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
}

#[test]
fn pod_runs_non_root_with_runtime_default_seccomp() {
    let docs = render("");
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(
        pod["enableServiceLinks"], false,
        "no environment from other Services"
    );
}

#[test]
fn container_has_resource_requests_and_a_memory_limit() {
    let docs = render("");
    let resources = &container(&docs)["resources"];
    assert!(resources["requests"]["cpu"].is_string());
    assert!(resources["requests"]["memory"].is_string());
    assert!(resources["limits"]["memory"].is_string());
}

#[test]
fn probes_hit_livez_and_readyz_on_the_admin_port() {
    let docs = render("operator: {adminPort: 9090}\n");
    let c = container(&docs);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    let ports = c["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "admin");
    assert_eq!(ports[0]["containerPort"], 9090);
    assert!(
        args(&docs).contains(&"--admin-addr=0.0.0.0:9090".to_owned()),
        "the admin server listens on the probed port: {:?}",
        args(&docs)
    );
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");
}

#[test]
fn pod_namespace_and_pod_name_come_from_the_downward_api() {
    let docs = render("");
    let env = container(&docs)["env"].as_array().unwrap().clone();
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"))["valueFrom"]["fieldRef"]["fieldPath"]
            .clone()
    };
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("POD_NAME"), "metadata.name");
}

#[test]
fn container_runs_the_run_subcommand_with_the_default_flags() {
    let docs = render("");
    let a = args(&docs);
    assert_eq!(a[0], "run");
    for expected in [
        "--admin-addr=0.0.0.0:8080",
        "--status-interval=10s",
        "--log-format=json",
        "--log-level=info",
        "--shutdown-timeout=25s",
    ] {
        assert!(a.contains(&expected.to_owned()), "{expected} in {a:?}");
    }
    assert!(
        !a.iter().any(|x| x.starts_with("--trusted-namespaces")),
        "by default the operator trusts only its own namespace: {a:?}"
    );
    assert!(
        !a.iter().any(|x| x.starts_with("--allow-secret-data")),
        "{a:?}"
    );
}

#[test]
fn operator_values_become_flags() {
    let docs = render(
        "operator:\n  trustedNamespaces: [ops, observability]\n  allowSecretData: true\n  \
         statusInterval: 30s\n  logFormat: text\n  logLevel: debug\n  extraArgs: ['--x=1']\n",
    );
    let a = args(&docs);
    for expected in [
        "--trusted-namespaces=ops,observability",
        "--allow-secret-data",
        "--status-interval=30s",
        "--log-format=text",
        "--log-level=debug",
    ] {
        assert!(a.contains(&expected.to_owned()), "{expected} in {a:?}");
    }
    assert_eq!(
        a.last().map(String::as_str),
        Some("--x=1"),
        "extra args come last"
    );
}

#[test]
fn tracing_endpoint_sets_the_standard_otel_variables() {
    let docs = render("tracing: {otlpEndpoint: 'http://otel-collector.observability:4318'}\n");
    let env = container(&docs)["env"].as_array().unwrap().clone();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        value("OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some(Value::from("http://otel-collector.observability:4318"))
    );
    assert_eq!(value("OTEL_SERVICE_NAME"), Some(Value::from(FULLNAME)));

    let docs = render("");
    let env = container(&docs)["env"].as_array().unwrap().clone();
    assert!(
        !env.iter()
            .any(|e| e["name"].as_str().unwrap_or_default().starts_with("OTEL_")),
        "no OTLP export unless an endpoint is given"
    );
}

#[test]
fn grace_period_exceeds_the_shutdown_timeout_by_default() {
    let docs = render("");
    let grace =
        one(&docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap();
    let timeout = args(&docs)
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-timeout=").map(str::to_owned))
        .unwrap();
    let timeout: i64 = timeout.strip_suffix('s').unwrap().parse().unwrap();
    assert!(
        grace > timeout,
        "grace {grace}s must exceed shutdown timeout {timeout}s"
    );
}

#[test]
fn grace_period_not_longer_than_the_shutdown_timeout_fails_the_render() {
    let err = try_render("terminationGracePeriodSeconds: 25\n").unwrap_err();
    assert!(err.contains("terminationGracePeriodSeconds"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_role_grants_list_and_watch_exactly_on_the_default_kinds() {
    let docs = render("");
    let mut expected = default_watchable();
    expected.extend(crd_watch());
    assert_eq!(watchable_grants(&docs), expected);
    let role = one(&docs, "ClusterRole");
    for rule in role["rules"].as_array().unwrap() {
        let groups = strings(&rule["apiGroups"]);
        if groups == ["watchpool.dev"] || groups == ["events.k8s.io"] {
            continue;
        }
        assert_eq!(
            strings(&rule["verbs"]),
            vec!["list", "watch"],
            "watchable kinds get list and watch only: {rule}"
        );
    }
}

#[test]
fn extra_watchable_resources_add_exactly_their_kinds() {
    let docs = render(
        "extraWatchableResources:\n  - apiGroup: cert-manager.io\n    resources: [certificates, issuers]\n  \
         - apiGroup: \"\"\n    resources: [nodes]\n",
    );
    let mut expected = default_watchable();
    expected.extend(crd_watch());
    expected.extend(pairs(&[
        ("cert-manager.io", &["certificates", "issuers"]),
        ("", &["nodes"]),
    ]));
    assert_eq!(watchable_grants(&docs), expected);
}

#[test]
fn watchable_resources_can_be_narrowed_to_a_single_kind() {
    let docs = render(
        "watchableResources:\n  - apiGroup: apps\n    resources: [deployments]\n\
         rbac: {watchCustomResourceDefinitions: false}\n",
    );
    assert_eq!(
        watchable_grants(&docs),
        pairs(&[("apps", &["deployments"])]),
        "nothing but the one kind is readable"
    );
}

#[test]
fn crd_watch_is_granted_by_default_and_can_be_turned_off() {
    let grants = watchable_grants(&render(""));
    assert!(crd_watch().is_subset(&grants), "{grants:?}");
    let grants = watchable_grants(&render("rbac: {watchCustomResourceDefinitions: false}\n"));
    assert!(crd_watch().is_disjoint(&grants), "{grants:?}");
    assert_eq!(grants, default_watchable());
}

#[test]
fn rbac_never_uses_wildcards() {
    let docs = render(
        "replicaCount: 2\nextraWatchableResources:\n  - apiGroup: example.com\n    resources: [widgets]\n",
    );
    let mut checked = 0;
    for role in of_kind(&docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(&docs, "Role"))
    {
        for rule in role["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                for item in strings(&rule[field]) {
                    assert!(!item.contains('*'), "wildcard in {field} of {rule}");
                }
            }
            assert!(
                rule["nonResourceURLs"].is_null(),
                "no non-resource URLs: {rule}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "rules were found and checked: {checked}");
}

#[test]
fn cluster_role_covers_watchpolicies_their_status_and_finalizers() {
    let docs = render("");
    let role = one(&docs, "ClusterRole");
    let verbs_of = |resource: &str| -> Vec<String> {
        let rules: Vec<&Value> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                strings(&r["apiGroups"]) == ["watchpool.dev"]
                    && strings(&r["resources"]) == [resource]
            })
            .collect();
        assert_eq!(rules.len(), 1, "one rule for {resource}");
        let mut v = strings(&rules[0]["verbs"]);
        v.sort();
        v
    };
    assert_eq!(
        verbs_of("watchpolicies"),
        vec!["get", "list", "patch", "update", "watch"]
    );
    assert_eq!(
        verbs_of("watchpolicies/status"),
        vec!["get", "patch", "update"]
    );
    assert_eq!(verbs_of("watchpolicies/finalizers"), vec!["update"]);
    assert!(
        !role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| strings(&r["verbs"])
                .iter()
                .any(|v| v == "delete" || v == "create")
                && strings(&r["apiGroups"]) == ["watchpool.dev"]),
        "the operator never creates or deletes policies"
    );
}

#[test]
fn events_are_created_and_patched_through_events_k8s_io() {
    let docs = render("");
    let role = one(&docs, "ClusterRole");
    let rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| strings(&r["apiGroups"]) == ["events.k8s.io"])
        .expect("an events.k8s.io rule");
    assert_eq!(strings(&rule["resources"]), vec!["events"]);
    let mut verbs = strings(&rule["verbs"]);
    verbs.sort();
    assert_eq!(verbs, vec!["create", "patch"]);
}

#[test]
fn bindings_give_the_roles_to_the_operator_service_account() {
    let docs = render("");
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], FULLNAME);
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);
    for (binding_kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let binding = one(&docs, binding_kind);
        let role = one(&docs, role_kind);
        assert_eq!(binding["roleRef"]["kind"], role_kind);
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        let subjects = binding["subjects"].as_array().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(subjects[0]["name"], FULLNAME);
        assert_eq!(subjects[0]["namespace"], NAMESPACE);
    }
}

#[test]
fn lease_role_is_namespaced_and_limited_to_the_release_lease() {
    let docs = render(HA_VALUES);
    let role = one(&docs, "Role");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    let lease_name = args(&docs)
        .iter()
        .find_map(|a| a.strip_prefix("--lease-name=").map(str::to_owned))
        .expect("--lease-name with two replicas");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(strings(&rule["apiGroups"]), vec!["coordination.k8s.io"]);
        assert_eq!(strings(&rule["resources"]), vec!["leases"]);
        let names = strings(&rule["resourceNames"]);
        for verb in strings(&rule["verbs"]) {
            if verb != "create" {
                assert_eq!(
                    names,
                    vec![lease_name.clone()],
                    "{verb} is limited to the lease"
                );
            }
            granted.insert(verb);
        }
    }
    let expected: BTreeSet<String> = ["create", "get", "patch", "update"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(granted, expected);
}

#[test]
fn rbac_create_false_renders_no_roles() {
    let docs = render("rbac: {create: false}\n");
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            of_kind(&docs, kind).is_empty(),
            "{kind} rendered with rbac.create=false"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Replicas, leader election, optional objects
// ---------------------------------------------------------------------------------------------

#[test]
fn single_replica_runs_without_leader_election_or_pdb_and_never_overlaps() {
    let docs = render("");
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(
        !args(&docs)
            .iter()
            .any(|a| a.starts_with("--leader-election"))
    );
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    assert_eq!(
        deployment["spec"]["strategy"]["type"], "Recreate",
        "without leader election an update must not run two operators at once"
    );
}

#[test]
fn two_replicas_turn_on_leader_election_and_add_a_pdb() {
    let docs = render(HA_VALUES);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let a = args(&docs);
    assert!(a.contains(&"--leader-election".to_owned()), "{a:?}");
    assert!(a.contains(&format!("--lease-name={FULLNAME}")), "{a:?}");
    assert!(a.contains(&"--lease-duration=15s".to_owned()), "{a:?}");
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "the PDB selects the operator pods"
    );
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let anti = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert!(
        anti["preferredDuringSchedulingIgnoredDuringExecution"].is_array(),
        "replicas are spread over nodes"
    );
}

#[test]
fn pdb_max_unavailable_replaces_min_available() {
    let docs = render("replicaCount: 3\npodDisruptionBudget: {maxUnavailable: 1}\n");
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"]["minAvailable"].is_null());
}

#[test]
fn leader_election_can_be_forced_on_for_one_replica_without_a_pdb() {
    let docs = render("operator: {leaderElection: {enabled: true, leaseName: my-lease}}\n");
    let a = args(&docs);
    assert!(a.contains(&"--leader-election".to_owned()), "{a:?}");
    assert!(a.contains(&"--lease-name=my-lease".to_owned()), "{a:?}");
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    let role = one(&docs, "Role");
    assert!(
        role.to_string().contains("my-lease"),
        "the Role names the chosen lease: {role}"
    );
}

#[test]
fn service_monitor_is_absent_by_default_and_scrapes_metrics_when_enabled() {
    assert!(of_kind(&render(""), "ServiceMonitor").is_empty());
    let docs = render("serviceMonitor: {enabled: true, labels: {release: prom}}\n");
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert_eq!(endpoint["path"], "/metrics");
    let service = one(&docs, "Service");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    assert_eq!(service["spec"]["ports"][0]["name"], "admin");
}

#[test]
fn network_policy_is_absent_by_default_and_limits_traffic_when_enabled() {
    assert!(of_kind(&render(""), "NetworkPolicy").is_empty());
    let docs = render(
        "networkPolicy:\n  enabled: true\n  apiServerCidrs: [10.0.0.1/32]\n  ingressFrom:\n    \
         - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n",
    );
    let np = one(&docs, "NetworkPolicy");
    assert_eq!(
        strings(&np["spec"]["policyTypes"]),
        vec!["Ingress", "Egress"]
    );
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], "admin");
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress[0]["to"][0]["ipBlock"]["cidr"], "10.0.0.1/32");
    let api_ports: Vec<i64> = egress[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(api_ports, vec![443, 6443]);
    assert_eq!(egress[1]["ports"][0]["port"], 53, "DNS is allowed");
}

#[test]
fn every_object_carries_the_standard_labels_and_the_release_namespace() {
    let docs = render(
        "replicaCount: 2\nserviceMonitor: {enabled: true}\nnetworkPolicy: {enabled: true}\n\
         commonLabels: {team: platform}\n",
    );
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, expected, "every object is rendered");
    assert_eq!(docs.len(), expected.len(), "each object once");
    let cluster_scoped = ["ClusterRole", "ClusterRoleBinding"];
    for doc in &docs {
        let labels = &doc["metadata"]["labels"];
        let kind = doc["kind"].as_str().unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "watchpool", "{kind}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{kind}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{kind}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{kind}");
        assert_eq!(labels["helm.sh/chart"], "watchpool-0.1.0", "{kind}");
        assert_eq!(labels["team"], "platform", "{kind}");
        if cluster_scoped.contains(&kind) {
            assert!(
                doc["metadata"]["namespace"].is_null(),
                "{kind} is cluster-scoped"
            );
        } else {
            assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{kind}");
        }
    }
    let pod_labels = &one(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["app.kubernetes.io/name"], "watchpool");
}

#[test]
fn notes_tell_how_to_apply_a_first_policy_and_read_its_status() {
    let chart = chart_dir();
    let out = helm(
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let notes = stdout.split("NOTES:").nth(1).expect("NOTES are printed");
    for expected in [
        "kind: WatchPolicy",
        "kubectl apply",
        &format!("kubectl -n {NAMESPACE} get wp"),
        &format!("kubectl -n {NAMESPACE} describe wp first-policy"),
        "--for=condition=Ready",
    ] {
        assert!(
            notes.contains(expected),
            "NOTES mention {expected:?}:\n{notes}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Values schema and documentation
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_value_is_rejected_by_the_schema() {
    let chart = chart_dir();
    let out = helm(
        &[
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--set",
            "unknownKey=1",
        ],
        "",
    );
    assert!(!out.status.success(), "an unknown key must fail the render");
    assert!(
        text(&out.stderr).contains("unknownKey"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_nested_values_are_rejected_by_the_schema() {
    for (values, key) in [
        ("operator: {adminPrt: 9090}\n", "adminPrt"),
        (
            "securityContext: {capabilities: {keep: [NET_ADMIN]}}\n",
            "keep",
        ),
        ("image: {registry: docker.io}\n", "registry"),
        ("serviceMonitor: {enable: true}\n", "enable"),
        (
            "extraWatchableResources: [{apiGroup: apps, resources: [deployments], verbs: [get]}]\n",
            "verbs",
        ),
        (
            "operator: {leaderElection: {renewDeadline: 10s}}\n",
            "renewDeadline",
        ),
        (
            "affinity: {podAntiAffinity: {preferred: []}}\n",
            "preferred",
        ),
    ] {
        let err = try_render(values).expect_err(values);
        assert!(err.contains(key), "the error names {key}: {err}");
    }
}

#[test]
fn wildcard_or_malformed_watchable_resources_are_rejected_by_the_schema() {
    for values in [
        "extraWatchableResources: [{apiGroup: '*', resources: [pods]}]\n",
        "extraWatchableResources: [{apiGroup: '', resources: ['*']}]\n",
        "extraWatchableResources: [{apiGroup: '', resources: [pods/log]}]\n",
        "extraWatchableResources: [{apiGroup: apps, resources: []}]\n",
        "extraWatchableResources: [{resources: [pods]}]\n",
    ] {
        assert!(try_render(values).is_err(), "{values} must be refused");
    }
}

#[test]
fn malformed_operator_settings_are_rejected_by_the_schema() {
    for values in [
        "operator: {statusInterval: soon}\n",
        "operator: {logFormat: xml}\n",
        "operator: {leaderElection: {leaseDuration: 1500ms}}\n",
        "operator: {trustedNamespaces: [Bad_NS]}\n",
        "replicaCount: two\n",
        "image: {digest: latest}\n",
    ] {
        assert!(try_render(values).is_err(), "{values} must be refused");
    }
}

fn schema() -> Value {
    let path = chart_dir().join("values.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Walks every subschema; `path` names where it is.
fn walk_schema<'a>(value: &'a Value, path: String, visit: &mut dyn FnMut(&str, &'a Value)) {
    let Some(map) = value.as_object() else { return };
    visit(&path, value);
    for (key, child) in map {
        match key.as_str() {
            "properties" | "definitions" => {
                for (name, sub) in child.as_object().unwrap() {
                    walk_schema(sub, format!("{path}/{name}"), visit);
                }
            }
            "items" | "additionalProperties" => walk_schema(child, format!("{path}[]"), visit),
            _ => {}
        }
    }
}

#[test]
fn every_object_in_the_values_schema_rejects_unknown_keys() {
    let schema = schema();
    let mut objects = 0;
    walk_schema(&schema, String::new(), &mut |path, node| {
        let is_object = node["type"] == "object" || node.get("properties").is_some();
        if !is_object || path == "/global" {
            // `global` belongs to parent charts and is passed through untouched.
            return;
        }
        objects += 1;
        match node.get("additionalProperties") {
            Some(Value::Bool(false)) => assert!(
                node.get("properties").is_some(),
                "{path}: a closed object lists its properties"
            ),
            // A map (labels, annotations): keys are free, values are typed.
            Some(Value::Object(values)) => {
                assert!(
                    node.get("properties").is_none(),
                    "{path}: a map has no fixed properties"
                );
                assert!(values.get("type").is_some(), "{path}: map values are typed");
            }
            other => {
                panic!("{path}: additionalProperties must be false or a schema, got {other:?}")
            }
        }
    });
    assert!(objects > 30, "the schema was walked: {objects} objects");
}

#[test]
fn every_value_in_the_schema_has_a_description() {
    let schema = schema();
    let top = schema["properties"].as_object().unwrap();
    for (name, node) in top {
        let described = node
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty());
        assert!(described, "/{name} has a description");
    }
    walk_schema(&schema, String::new(), &mut |path, node| {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                assert!(
                    prop.get("description").is_some(),
                    "{path}/{name} has a description in the schema"
                );
            }
        }
    });
}

/// Every mapping key of values.yaml outside list items, with the comment block above it.
fn values_yaml_keys() -> Vec<(String, Vec<String>)> {
    let source = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let mut keys = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut list_indent: Option<usize> = None;
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in source.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
            continue;
        }
        if let Some(li) = list_indent {
            if indent > li || (indent == li && trimmed.starts_with('-')) {
                continue;
            }
            list_indent = None;
        }
        if trimmed.starts_with('-') {
            list_indent = Some(indent);
            comments.clear();
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        path.push((indent, key.to_owned()));
        let full = path
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>()
            .join(".");
        keys.push((full, std::mem::take(&mut comments)));
    }
    keys
}

#[test]
fn every_value_is_documented_in_values_yaml() {
    let keys = values_yaml_keys();
    assert!(keys.len() > 40, "values.yaml was read: {} keys", keys.len());
    let is_doc = |comments: &[String]| comments.iter().any(|c| c.starts_with("-- ") && c.len() > 4);
    let mut undocumented = Vec::new();
    for (key, comments) in &keys {
        let is_parent = keys.iter().any(|(k, _)| k.starts_with(&format!("{key}.")));
        // Inside a block value documented as a whole (a security context, resources).
        let in_documented_block = keys
            .iter()
            .any(|(k, c)| key.starts_with(&format!("{k}.")) && is_doc(c));
        // A plain parent key (`image:`) groups children that are checked one by one.
        if in_documented_block || (is_parent && !is_doc(comments)) {
            continue;
        }
        if !is_doc(comments) {
            undocumented.push(key.clone());
        }
    }
    assert!(
        undocumented.is_empty(),
        "values without a `# --` comment: {undocumented:?}"
    );
}

#[test]
fn values_yaml_and_the_schema_name_the_same_top_level_values() {
    let yaml: BTreeSet<String> = values_yaml_keys()
        .into_iter()
        .filter(|(k, _)| !k.contains('.'))
        .map(|(k, _)| k)
        .collect();
    let schema: BTreeSet<String> = schema()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "global")
        .cloned()
        .collect();
    assert_eq!(yaml, schema);
}

// ---------------------------------------------------------------------------------------------
// CRD copy, image and Dockerfile
// ---------------------------------------------------------------------------------------------

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn chart_crd_is_identical_to_the_generated_crd() {
    let root = tools::workspace_root();
    let generated = read(&root.join("crds").join("watchpool.dev_watchpolicies.yaml"));
    let copy = read(
        &chart_dir()
            .join("crds")
            .join("watchpool.dev_watchpolicies.yaml"),
    );
    assert!(
        generated == copy,
        "charts/watchpool/crds/watchpool.dev_watchpolicies.yaml differs from \
         crds/watchpool.dev_watchpolicies.yaml: copy it again"
    );
    let crd: Value = serde_saphyr::from_str(&copy).unwrap();
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "watchpolicies.watchpool.dev");
}

fn chart_yaml() -> Value {
    serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).unwrap()
}

#[test]
fn chart_app_version_is_the_workspace_version() {
    let manifest = read(&tools::workspace_root().join("Cargo.toml"));
    let workspace_version = manifest
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("workspace version");
    assert_eq!(chart_yaml()["appVersion"], workspace_version.as_str());
    assert_eq!(chart_yaml()["apiVersion"], "v2");
}

#[test]
fn default_image_is_the_one_the_dockerfile_builds_and_pinning_a_digest_wins() {
    let app_version = chart_yaml()["appVersion"].as_str().unwrap().to_owned();
    let docs = render("");
    assert_eq!(
        container(&docs)["image"],
        format!("ghcr.io/watchpool/watchpool-operator:{app_version}").as_str()
    );
    let dockerfile = read(&tools::workspace_root().join("Dockerfile"));
    assert!(
        dockerfile.contains(&format!(
            "ghcr.io/watchpool/watchpool-operator:{app_version}"
        )),
        "the Dockerfile documents the tag the chart pulls"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let docs = render(&format!("image: {{tag: ignored, digest: '{digest}'}}\n"));
    assert_eq!(
        container(&docs)["image"],
        format!("ghcr.io/watchpool/watchpool-operator@{digest}").as_str()
    );
}

#[test]
fn dockerfile_builds_the_locked_release_binary_into_a_non_root_minimal_image() {
    let dockerfile = read(&tools::workspace_root().join("Dockerfile"));
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a builder stage and a runtime stage: {froms:?}"
    );
    assert!(
        froms[1].contains("distroless"),
        "minimal runtime image: {}",
        froms[1]
    );
    assert!(dockerfile.contains("cargo build --release --locked -p watchpool-operator"));
    let runtime: Vec<&&str> = instructions
        .iter()
        .skip_while(|l| !std::ptr::eq(**l, *froms[1]))
        .collect();
    let last = |prefix: &str| {
        runtime
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .map(|l| (**l).to_owned())
            .unwrap_or_else(|| panic!("the runtime stage has {prefix}"))
    };
    let toolchain = read(&tools::workspace_root().join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .expect("rust-toolchain.toml pins a channel");
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={channel}\n")),
        "the builder uses the pinned toolchain {channel}"
    );
    assert!(
        froms[0].contains("bookworm") && froms[1].contains("debian12"),
        "builder and runtime share the Debian release (and so the glibc): {froms:?}"
    );
    assert_eq!(last("USER "), "USER 65532:65532");
    assert_eq!(last("ENTRYPOINT "), r#"ENTRYPOINT ["watchpool-operator"]"#);
    assert_eq!(last("CMD "), r#"CMD ["run"]"#);
    let docs = render("");
    assert_eq!(
        container(&docs)["securityContext"]["runAsUser"],
        65532,
        "the chart runs the image's user"
    );
}

// ---------------------------------------------------------------------------------------------
// Operator docs shipped with the chart
// ---------------------------------------------------------------------------------------------

/// The operator docs this file checks: configuration, observability, security, quickstart,
/// the troubleshooting runbooks and the chart's README.
fn operator_docs() -> Vec<PathBuf> {
    let docs = tools::workspace_root().join("docs");
    let mut files: Vec<PathBuf> = [
        "configuration.md",
        "observability.md",
        "security.md",
        "quickstart.md",
    ]
    .iter()
    .map(|f| docs.join(f))
    .collect();
    let mut runbooks: Vec<PathBuf> = std::fs::read_dir(docs.join("troubleshooting"))
        .expect("docs/troubleshooting exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    runbooks.sort();
    files.extend(runbooks);
    files.push(chart_dir().join("README.md"));
    files
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Relative link targets (`](path#anchor)`) outside code blocks.
fn relative_links(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut links = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for part in line.split("](").skip(1) {
            let Some(target) = part.split(')').next() else {
                continue;
            };
            if !target.starts_with("http") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
        }
    }
    links
}

#[test]
fn relative_links_in_the_operator_docs_resolve() {
    let files = operator_docs();
    assert!(files.len() >= 14, "docs found: {files:?}");
    let mut checked = 0;
    for file in &files {
        let text = read(file);
        for link in relative_links(&text) {
            let (path, fragment) = link.split_once('#').unwrap_or((link.as_str(), ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            assert!(
                target.exists(),
                "{}: link {link} points nowhere",
                file.display()
            );
            if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                assert!(
                    anchors(&read(&target)).contains(fragment),
                    "{}: link {link}: no heading #{fragment} in {}",
                    file.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "links were checked: {checked}");
}

#[test]
fn every_problem_state_has_a_runbook_linked_from_the_index() {
    let dir = tools::workspace_root().join("docs").join("troubleshooting");
    let index = read(&dir.join("README.md"));
    for state in watchpool_api::TargetState::ALL {
        if state == watchpool_api::TargetState::Watching {
            continue;
        }
        let page = match state {
            watchpool_api::TargetState::NotFound => "not-found.md".to_owned(),
            other => format!("{}.md", other.as_str().to_lowercase()),
        };
        let runbook = read(&dir.join(&page));
        for section in ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation"] {
            assert!(runbook.contains(section), "{page} has a {section} section");
        }
        assert!(
            index.contains(&format!("`{}`", state.as_str()))
                && index.contains(&format!("]({page})")),
            "the index names {} and links {page}",
            state.as_str()
        );
    }
    for page in ["invalid-spec.md", "cpu-throttled.md"] {
        assert!(dir.join(page).is_file(), "{page} exists");
        assert!(
            index.contains(&format!("]({page})")),
            "the index links {page}"
        );
    }
}

#[test]
fn observability_docs_name_every_metric_and_error_reason() {
    let text = read(
        &tools::workspace_root()
            .join("docs")
            .join("observability.md"),
    );
    for metric in [
        "watchpool_watch_events_total",
        "watchpool_watch_reconnects_total",
        "watchpool_watch_relists_total",
        "watchpool_watch_errors_total",
        "watchpool_watch_targets",
        "watchpool_cache_objects",
        "watchpool_pool_cpu_seconds_total",
        "watchpool_pool_cpu_throttled_seconds_total",
        "watchpool_pool_cpu_throttled",
        "watchpool_reconcile_total",
        "watchpool_reconcile_errors_total",
        "watchpool_reconcile_duration_seconds",
        "watchpool_status_writes_total",
        "watchpool_leader",
        "watchpool_build_info",
    ] {
        assert!(
            text.contains(&format!("`{metric}`")),
            "observability.md documents {metric}"
        );
    }
    for state in watchpool_api::TargetState::ALL {
        assert!(
            text.contains(&format!("`{}`", state.as_str())),
            "state {}",
            state.as_str()
        );
    }
    for reason in [
        "Gone",
        "ResourceVersionTooLarge",
        "Throttled",
        "ServerError",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "ConnectionFailed",
        "ConnectionReset",
        "RequestTimeout",
        "IdleTimeout",
        "EmptyWatch",
        "DecodeError",
        "EventTooLarge",
        "TooManyObjects",
        "RetriesExhausted",
        "Unknown",
    ] {
        assert!(
            text.contains(&format!("`{reason}`")),
            "error reason {reason}"
        );
    }
}

#[test]
fn configuration_docs_name_every_helm_value() {
    let text = read(
        &tools::workspace_root()
            .join("docs")
            .join("configuration.md"),
    );
    let mut missing = Vec::new();
    let documented = values_yaml_keys()
        .into_iter()
        .filter(|(_, comments)| comments.iter().any(|c| c.starts_with("-- ")));
    for (key, _) in documented {
        // Probe timings are listed together: `livenessProbe.{initialDelaySeconds,…}`.
        let grouped = key
            .rsplit_once('.')
            .is_some_and(|(parent, _)| text.contains(&format!("`{parent}.{{")));
        if !text.contains(&format!("`{key}`")) && !grouped {
            missing.push(key);
        }
    }
    assert!(
        missing.is_empty(),
        "values not in docs/configuration.md: {missing:?}"
    );
}

/// Parses a WatchPolicy manifest and runs the operator's own validation on it, as a policy of
/// `namespace` (trusted or not).
fn validate_policy(manifest: &str, namespace: &str, trusted: bool) {
    let policy: watchpool_api::WatchPolicy = serde_saphyr::from_str(manifest)
        .unwrap_or_else(|e| panic!("not a WatchPolicy: {e}\n{manifest}"));
    let ctx = watchpool_api::ValidationContext::new(namespace).trusted(trusted);
    if let Err(errors) = policy.spec.validate(&ctx) {
        panic!("the example policy is invalid: {errors}\n{manifest}");
    }
}

#[test]
fn notes_example_policy_is_valid_in_any_namespace() {
    let chart = chart_dir();
    let out = helm(
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let notes = stdout.split("NOTES:").nth(1).expect("NOTES are printed");
    let body = notes
        .split("<<'YAML'")
        .nth(1)
        .and_then(|rest| rest.split("\n     YAML").next())
        .expect("NOTES carry a policy between <<'YAML' and YAML");
    let manifest: String = body
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("     ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    // The NOTES apply it to the release namespace; it names no other namespace, so it is valid
    // even where it is not trusted.
    validate_policy(&manifest, NAMESPACE, false);
}

#[test]
fn quickstart_policy_is_valid_in_the_release_namespace() {
    let text = read(&tools::workspace_root().join("docs").join("quickstart.md"));
    let manifest = text
        .split("```yaml\n# inventory.yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the quickstart carries inventory.yaml");
    // It watches the whole cluster: valid because the release namespace is trusted by default.
    validate_policy(manifest, "watchpool-system", true);
    let policy: watchpool_api::WatchPolicy = serde_saphyr::from_str(manifest).unwrap();
    let untrusted = watchpool_api::ValidationContext::new("watchpool-system");
    assert!(
        policy.spec.validate(&untrusted).is_err(),
        "the same policy outside a trusted namespace is refused, as the quickstart says"
    );
}

// ---------------------------------------------------------------------------------------------
// The rendered command line against the real operator binary
// ---------------------------------------------------------------------------------------------

/// The `watchpool-operator` binary of this build (built first when missing or stale).
fn operator_binary() -> PathBuf {
    watchpool_e2e::operator::binary().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the operator with `args` and the pod's environment but no reachable cluster: a
/// command line and configuration the operator accepts gets as far as building its client
/// and exits 1; one it refuses exits 2 before.
fn run_operator(binary: &Path, args: &[String]) -> Output {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chart-operator-home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(binary)
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("no-such-kubeconfig"))
        .env("POD_NAMESPACE", NAMESPACE)
        .env("POD_NAME", "wp-watchpool-6d4cf56db6-x7k2p")
        .stdin(Stdio::null())
        .output()
        .expect("the operator binary starts")
}

/// The container's arguments, with the admin server moved to loopback so that nothing binds
/// a public port should the operator get that far.
fn loopback_args(docs: &[Value]) -> Vec<String> {
    args(docs)
        .into_iter()
        .map(|a| {
            if a.starts_with("--admin-addr=") {
                "--admin-addr=127.0.0.1:0".to_owned()
            } else {
                a
            }
        })
        .collect()
}

#[test]
fn rendered_command_lines_are_accepted_by_the_operator_binary() {
    let binary = operator_binary();

    // The check below tells "accepted" from "refused": a misspelt flag exits 2.
    let refused = run_operator(&binary, &["run".into(), "--no-such-flag".into()]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));

    let mut sets = values_sets();
    sets.push((
        "secret data and custom lease".to_owned(),
        "operator:\n  allowSecretData: true\n  statusInterval: 1m30s\n  \
         leaderElection: {enabled: true, leaseName: my.lease, leaseDuration: 1m}\n"
            .to_owned(),
    ));
    for (name, values) in sets {
        let docs = render(&values);
        let args = loopback_args(&docs);
        let out = run_operator(&binary, &args);
        // Logs go to stdout, the final error to stderr.
        let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(1),
            "with {name} the operator must accept {args:?} and fail only for want of a \
             cluster; it said:\n{output}"
        );
        assert!(!output.contains("invalid configuration"), "{output}");
        assert!(
            output.contains("starting watchpool-operator"),
            "the configuration was accepted and the operator started: {output}"
        );
    }
}

#[test]
fn chart_requires_the_oldest_kubernetes_the_operator_supports() {
    // The operator is built against the 1.33 API (k8s-openapi feature v1_33).
    let manifest = read(&tools::workspace_root().join("operator").join("Cargo.toml"));
    assert!(
        manifest.contains("\"v1_33\""),
        "the operator still targets 1.33"
    );
    let chart = chart_dir();
    let template = |version: &str| {
        helm(
            &[
                "template",
                RELEASE,
                chart.to_str().unwrap(),
                "--kube-version",
                version,
            ],
            "",
        )
    };
    let old = template("1.32.9");
    assert!(!old.status.success(), "Kubernetes 1.32 is refused");
    assert!(
        text(&old.stderr).contains("kubeVersion"),
        "{}",
        text(&old.stderr)
    );
    for version in ["1.33.0", "1.35.0"] {
        let out = template(version);
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
    }
}

// ---------------------------------------------------------------------------------------------
// The rendered objects against the Kubernetes API types
// ---------------------------------------------------------------------------------------------

/// Decodes `doc` as the Kubernetes type `T` and encodes it back: a field the type does not
/// know (a misspelling, a wrong level of indentation) is dropped on the way and shows up as a
/// difference.
fn round_trips_as<T: serde::de::DeserializeOwned + serde::Serialize>(
    doc: &Value,
) -> Result<(), String> {
    let typed: T =
        serde_json::from_value(doc.clone()).map_err(|e| format!("does not decode: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == doc {
        Ok(())
    } else {
        Err(format!(
            "changed by a round trip:\nrendered: {doc:#}\ntyped:    {back:#}"
        ))
    }
}

#[test]
fn rendered_objects_are_valid_kubernetes_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    let mut kinds = BTreeSet::new();
    for (name, values) in values_sets() {
        for doc in render(&values) {
            let kind = doc["kind"].as_str().unwrap().to_owned();
            let result = match kind.as_str() {
                "Deployment" => round_trips_as::<Deployment>(&doc),
                "Service" => round_trips_as::<Service>(&doc),
                "ServiceAccount" => round_trips_as::<ServiceAccount>(&doc),
                "ClusterRole" => round_trips_as::<ClusterRole>(&doc),
                "ClusterRoleBinding" => round_trips_as::<ClusterRoleBinding>(&doc),
                "Role" => round_trips_as::<Role>(&doc),
                "RoleBinding" => round_trips_as::<RoleBinding>(&doc),
                "PodDisruptionBudget" => round_trips_as::<PodDisruptionBudget>(&doc),
                "NetworkPolicy" => round_trips_as::<NetworkPolicy>(&doc),
                // Not a built-in type: its fields are checked in the ServiceMonitor test.
                "ServiceMonitor" => Ok(()),
                other => Err(format!("unexpected kind {other}")),
            };
            if let Err(problem) = result {
                panic!("{kind} with {name} {problem}");
            }
            kinds.insert(kind);
        }
    }
    assert_eq!(kinds.len(), 10, "every kind was checked: {kinds:?}");
}

/// (group, plural) of a Kubernetes API type, as k8s-openapi knows it.
fn resource_of<T: k8s_openapi::Resource>() -> (String, String) {
    (T::GROUP.to_owned(), T::URL_PATH_SEGMENT.to_owned())
}

#[test]
fn default_watchable_resources_are_real_api_resources() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    let known: BTreeSet<(String, String)> = [
        resource_of::<Pod>(),
        resource_of::<Service>(),
        resource_of::<ConfigMap>(),
        resource_of::<Secret>(),
        resource_of::<Namespace>(),
        resource_of::<Deployment>(),
        resource_of::<StatefulSet>(),
        resource_of::<DaemonSet>(),
        resource_of::<ReplicaSet>(),
        resource_of::<Job>(),
        resource_of::<CronJob>(),
        resource_of::<Ingress>(),
        resource_of::<EndpointSlice>(),
        resource_of::<CustomResourceDefinition>(),
    ]
    .into_iter()
    .collect();
    let granted = watchable_grants(&render(""));
    let unknown: Vec<_> = granted.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "granted resources that the Kubernetes API does not have (a typo in values.yaml?): {unknown:?}"
    );
    assert_eq!(
        granted.len(),
        known.len(),
        "every known kind is granted once"
    );
}

/// String literals of `source` that start with `prefix` and continue with `[a-z0-9_]`.
fn literals_with_prefix(source: &str, prefix: &str) -> BTreeSet<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with(prefix)
                && s.len() > prefix.len()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn observability_docs_cover_every_metric_the_operator_registers() {
    let source = read(&tools::workspace_root().join("operator/src/metrics.rs"));
    let names = literals_with_prefix(&source, "watchpool_");
    assert!(
        names.len() >= 15,
        "metric names found in operator/src/metrics.rs: {names:?}"
    );
    let docs = read(&tools::workspace_root().join("docs/observability.md"));
    let missing: Vec<_> = names
        .iter()
        .filter(|name| !docs.contains(&format!("`{name}")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics not in docs/observability.md: {missing:?}"
    );
}

#[test]
fn configuration_docs_cover_every_flag_and_variable_of_the_operator() {
    let source = read(&tools::workspace_root().join("operator/src/args.rs"));
    let docs = read(&tools::workspace_root().join("docs/configuration.md"));
    let run_args = source
        .split("pub struct RunArgs {")
        .nth(1)
        .and_then(|s| s.split("\n}").next())
        .expect("RunArgs in operator/src/args.rs");
    let mut flags = Vec::new();
    for line in run_args.lines() {
        if let Some(field) = line
            .trim()
            .strip_prefix("pub ")
            .and_then(|l| l.split(':').next())
        {
            flags.push(format!("--{}", field.replace('_', "-")));
        }
    }
    assert!(flags.len() >= 10, "flags found: {flags:?}");
    let envs: Vec<String> = run_args
        .split("env = \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect();
    assert!(envs.len() >= 10, "environment variables found: {envs:?}");
    let missing: Vec<_> = flags
        .iter()
        .chain(&envs)
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

/// The values of `pub const NAME: &str = "value";` in `source`.
fn str_consts(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter(|l| l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

#[test]
fn observability_docs_cover_every_event_reason_and_condition() {
    let root = tools::workspace_root();
    let docs = read(&root.join("docs/observability.md"));
    let events = str_consts(&read(&root.join("operator/src/events.rs")));
    let conditions = str_consts(&read(&root.join("operator/src/status.rs")));
    assert!(events.len() >= 7, "event reasons found: {events:?}");
    assert!(
        conditions.len() >= 8,
        "condition types and reasons found: {conditions:?}"
    );
    let missing: Vec<_> = events
        .iter()
        .chain(&conditions)
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/observability.md: {missing:?}"
    );
}

#[test]
fn a_release_named_watchpool_has_the_object_names_the_docs_use() {
    let chart = chart_dir();
    let out = helm(
        &[
            "template",
            "watchpool",
            chart.to_str().unwrap(),
            "--namespace",
            "watchpool-system",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text(&out.stdout)).unwrap();
    // docs/quickstart.md and the runbooks use deployment/watchpool, service/watchpool,
    // clusterrole watchpool and serviceaccount watchpool.
    for kind in ["Deployment", "Service", "ServiceAccount", "ClusterRole"] {
        assert_eq!(one(&docs, kind)["metadata"]["name"], "watchpool", "{kind}");
    }
    let quickstart = read(&tools::workspace_root().join("docs/quickstart.md"));
    assert!(quickstart.contains("rollout status deployment/watchpool"));
    assert!(quickstart.contains("port-forward service/watchpool 8080"));
}
