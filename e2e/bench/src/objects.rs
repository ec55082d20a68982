//! The objects the benchmarks write into the emulator.

use kube_emulator::Emulator;
use serde_json::{Value, json};

use crate::BenchError;
use crate::child::ObjectKind;

/// A ConfigMap of about `size` bytes of JSON (its data is `size` bytes of text in 8 keys).
pub fn config_map(ns: &str, name: &str, size: usize, seq: u64) -> Value {
    let per_key = size.saturating_sub(300) / 8;
    let mut data = serde_json::Map::new();
    for k in 0..8 {
        let fill: String = std::iter::repeat_n(char::from(b'a' + (k as u8)), per_key).collect();
        data.insert(format!("key-{k}"), Value::String(fill));
    }
    data.insert("seq".into(), Value::String(seq.to_string()));
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": "bench", "tier": "web"},
            "annotations": {"bench.watchpool.dev/owner": "bench"}
        },
        "data": data
    })
}

/// A Pod as a Deployment's ReplicaSet creates it, with a scheduled and running status (about
/// 3 KiB of JSON).
pub fn pod(ns: &str, name: &str, seq: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generateName": "web-7d4b9c8f6-",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-28T10:00:00Z", "seq": seq.to_string()},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6",
                "uid": "5d2f7a3e-8b1c-4e2a-9f6d-1a2b3c4d5e6f", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/shop/web:1.42.0",
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/web", "readOnly": true},
                    {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                ]}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "web",
            "nodeName": format!("node-{}", seq % 50),
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-11-28T10:00:03Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-28T10:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-28T10:00:09Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-11-28T10:00:09Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-28T10:00:00Z"}
            ],
            "hostIP": "10.0.3.17",
            "podIP": format!("10.244.{}.{}", (seq / 250) % 250, seq % 250),
            "podIPs": [{"ip": format!("10.244.{}.{}", (seq / 250) % 250, seq % 250)}],
            "startTime": "2026-11-28T10:00:00Z",
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "started": true,
                "image": "registry.example.com/shop/web:1.42.0",
                "imageID": "registry.example.com/shop/web@sha256:4f1c2b7e9a0d3c5b8e6f1a2d4c7b9e0f3a5d8c1b4e7f0a2d5c8b1e4f7a0d3c6b",
                "containerID": "containerd://9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c",
                "lastState": {},
                "state": {"running": {"startedAt": "2026-11-28T10:00:05Z"}}
            }],
            "qosClass": "Burstable"
        }
    })
}

/// An object of `kind` called `name` in `ns`.
pub fn object(kind: ObjectKind, ns: &str, name: &str, size: usize, seq: u64) -> Value {
    match kind {
        ObjectKind::ConfigMap => config_map(ns, name, size, seq),
        ObjectKind::Pod => pod(ns, name, seq),
    }
}

/// Creates namespace `ns` unless it exists.
pub fn namespace(emu: &Emulator, ns: &str) -> Result<(), BenchError> {
    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    match emu.create(obj) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(BenchError::Write(format!("{e:?}"))),
    }
}

/// Creates namespace `ns` and `count` objects `obj-0…` of `kind` in it.
pub fn populate(
    emu: &Emulator,
    kind: ObjectKind,
    ns: &str,
    count: usize,
    size: usize,
) -> Result<(), BenchError> {
    namespace(emu, ns)?;
    for i in 0..count {
        let name = format!("obj-{i}");
        emu.create(object(kind, ns, &name, size, i as u64))
            .map_err(|e| BenchError::Write(format!("{e:?}")))?;
    }
    Ok(())
}

/// Replaces object `obj-<i>` of `kind` in `ns` (a MODIFIED event).
pub fn modify(
    emu: &Emulator,
    kind: ObjectKind,
    ns: &str,
    i: usize,
    size: usize,
    seq: u64,
) -> Result<(), BenchError> {
    emu.update(object(kind, ns, &format!("obj-{i}"), size, seq))
        .map(|_| ())
        .map_err(|e| BenchError::Write(format!("{e:?}")))
}

/// Creates the sentinel object `name` (a ConfigMap or Pod) in `ns`.
pub fn sentinel(emu: &Emulator, kind: ObjectKind, ns: &str, name: &str) -> Result<(), BenchError> {
    emu.create(object(kind, ns, name, 400, 0))
        .map(|_| ())
        .map_err(|e| BenchError::Write(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_has_about_the_asked_size() {
        let len = serde_json::to_vec(&config_map("ns", "obj-1", 2048, 7))
            .map(|v| v.len())
            .unwrap_or(0);
        assert!((1800..2400).contains(&len), "size {len}");
    }

    #[test]
    fn pod_is_a_few_kib() {
        let len = serde_json::to_vec(&pod("ns", "obj-1", 7))
            .map(|v| v.len())
            .unwrap_or(0);
        assert!((2500..6000).contains(&len), "size {len}");
    }
}
