//! Bad input (FAULTS.md): every kind of bad WatchPolicy is refused by `kubectl apply` where
//! the CRD schema and CEL rules can say it (the emulator enforces them at admission, as an API
//! server does), and in every case reported by the operator as `Ready=False`, reason
//! `InvalidSpec`, with a message naming the field — those refused at admission are stored past
//! it (as a server that does not enforce the schema would) to prove the operator's own layer.
//! The operator never panics and a good policy next to the bad ones stays Ready. Each case
//! prints which layers stopped it: `E2E-BADINPUT case=… layer=admission+operator|operator`.

// Tests fail loudly on a broken environment; unwrap keeps the scenarios readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use watchpool_e2e::env::Env;
use watchpool_e2e::policy::{self, TestPolicy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Case {
    name: &'static str,
    /// The field path the operator's message must name.
    path: &'static str,
    /// What an admission refusal must mention (the path, or the object a CEL rule sits on).
    admission: &'static str,
    change: fn(&mut Value),
}

fn target0(v: &mut Value) -> &mut Value {
    &mut v["spec"]["targets"][0]
}

const CASES: &[Case] = &[
    Case {
        name: "unknown-kind",
        path: "spec.targets[0].kind",
        admission: "kind",
        change: |v| target0(v)["kind"] = json!("not a kind"),
    },
    Case {
        name: "malformed-apiversion",
        path: "spec.targets[0].apiVersion",
        admission: "apiVersion",
        change: |v| target0(v)["apiVersion"] = json!("apps/v1/extra"),
    },
    Case {
        name: "bad-selector",
        path: "spec.targets[0].labelSelector",
        admission: "labelSelector",
        change: |v| target0(v)["labelSelector"] = json!("tier in (web"),
    },
    Case {
        name: "negative-duration",
        path: "spec.timeouts.idle",
        admission: "idle",
        change: |v| v["spec"]["timeouts"]["idle"] = json!("-5s"),
    },
    Case {
        name: "unparsable-duration",
        path: "spec.timeouts.request",
        admission: "request",
        change: |v| v["spec"]["timeouts"]["request"] = json!("soon"),
    },
    Case {
        name: "initial-above-max",
        path: "spec.backoff",
        admission: "backoff",
        change: |v| {
            v["spec"]["backoff"]["initial"] = json!("10s");
            v["spec"]["backoff"]["max"] = json!("1s");
        },
    },
    Case {
        name: "jitter-above-one",
        path: "spec.backoff.jitter",
        admission: "jitter",
        change: |v| v["spec"]["backoff"]["jitter"] = json!(1.5),
    },
    Case {
        name: "jitter-negative",
        path: "spec.backoff.jitter",
        admission: "jitter",
        change: |v| v["spec"]["backoff"]["jitter"] = json!(-0.1),
    },
    Case {
        name: "empty-targets",
        path: "spec.targets",
        admission: "targets",
        change: |v| v["spec"]["targets"] = json!([]),
    },
    Case {
        name: "duplicate-targets",
        path: "spec.targets[1]",
        admission: "targets",
        change: |v| {
            let t = v["spec"]["targets"][0].clone();
            v["spec"]["targets"] = json!([t.clone(), t]);
        },
    },
    Case {
        name: "cpu-zero",
        path: "spec.limits.cpu",
        admission: "cpu",
        change: |v| v["spec"]["limits"]["cpu"] = json!("0"),
    },
    Case {
        name: "cpu-unparsable",
        path: "spec.limits.cpu",
        admission: "cpu",
        change: |v| v["spec"]["limits"]["cpu"] = json!("lots"),
    },
];

/// Applies `manifest`; returns the layer that refused it, after checking the message names
/// `path` (operator) or `admission` (kubectl).
async fn refused_by(
    env: &Env,
    name: &str,
    namespace: &str,
    manifest: &Value,
    path: &str,
    admission: &str,
) -> Result<&'static str, Box<dyn std::error::Error>> {
    let out = env.kubectl.apply_output(&manifest.to_string()).await?;
    let mut layer = "operator";
    if !out.success() {
        assert!(
            out.stderr.contains(admission),
            "{name}: kubectl refused it but the message does not name {admission:?}: {}",
            out.stderr
        );
        // Refused at admission. An API server that does not enforce the schema (an older one,
        // or a CRD installed without its rules) would store it: put it past admission and the
        // operator must still report it. On a real cluster the refusal is all there is.
        let Some(emu) = env.emulator() else {
            return Ok("admission");
        };
        emu.create_unvalidated(manifest.clone())
            .map_err(|e| format!("{name}: storing it past admission: {e:?}"))?;
        layer = "admission+operator";
    }
    let get = |ns: String| async move {
        let value = env.kubectl.json(&["get", "wp", name, "-n", &ns]).await?;
        Ok::<_, Box<dyn std::error::Error>>(serde_json::from_value::<watchpool_api::WatchPolicy>(
            value,
        )?)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = get(namespace.to_owned()).await?;
        if let Some(c) = policy::condition(&p, "Ready")
            && c.status == "False"
            && c.reason == "InvalidSpec"
        {
            assert!(
                c.message.contains(path),
                "{name}: InvalidSpec message names {path}: {}",
                c.message
            );
            return Ok(layer);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no InvalidSpec in time: {}",
            policy::summary(&p)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_at_admission_or_reported_invalid_spec_naming_the_field()
-> TestResult {
    let env = Env::start("badinput").await?;
    let operator = env.start_operator(&env.operator_options()).await?;
    let good = TestPolicy::configmaps("good", &env.namespace);
    env.apply_policy(&good).await?;
    env.wait_ready("good", Duration::from_secs(20)).await?;
    let checks = CASES.iter().map(|case| {
        let env = &env;
        async move {
            let mut manifest = TestPolicy::configmaps(case.name, &env.namespace).to_json();
            (case.change)(&mut manifest);
            let layer = refused_by(
                env,
                case.name,
                &env.namespace,
                &manifest,
                case.path,
                case.admission,
            )
            .await?;
            println!(
                "E2E-BADINPUT case={} layer={layer} field={}",
                case.name, case.path
            );
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    });
    for result in futures::future::join_all(checks).await {
        result?;
    }
    // The good policy is undisturbed and the operator did not panic.
    let p = env.get_policy("good").await?;
    assert!(
        policy::is_ready(&p),
        "the good policy stays Ready: {}",
        policy::summary(&p)
    );
    assert!(
        !operator.log_text().contains("panicked"),
        "the operator never panics"
    );
    operator.wait_ready(Duration::from_secs(2)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_watching_a_namespace_it_may_not_is_invalid_spec_naming_the_namespace() -> TestResult
{
    // Trust cannot be said by the schema: this always reaches the operator.
    let env = Env::start("untrusted").await?;
    let untrusted = format!("{}-u", env.namespace);
    env.create_namespace(&untrusted).await?;
    let _operator = env.start_operator(&env.operator_options()).await?;
    let mut manifest = TestPolicy::configmaps("reach", &untrusted).to_json();
    manifest["spec"]["targets"][0]["namespaces"] = json!([env.namespace]);
    let layer = refused_by(
        &env,
        "reach",
        &untrusted,
        &manifest,
        "spec.targets[0].namespaces",
        "namespaces",
    )
    .await?;
    println!(
        "E2E-BADINPUT case=untrusted-namespace layer={layer} field=spec.targets[0].namespaces"
    );
    assert_eq!(layer, "operator", "trust is checked by the operator only");
    let p: watchpool_api::WatchPolicy = serde_json::from_value(
        env.kubectl
            .json(&["get", "wp", "reach", "-n", &untrusted])
            .await?,
    )?;
    let message = policy::condition(&p, "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains(&env.namespace),
        "the message names the namespace not allowed: {message}"
    );
    Ok(())
}
