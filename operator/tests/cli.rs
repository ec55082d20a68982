//! The binary's interface: subcommands, configuration errors, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests: a panic is a failure report

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

#[test]
fn version_prints_version_commit_and_rustc() {
    let out = run(&["version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("git commit: "), "{text}");
    assert!(text.contains("rustc: rustc "), "{text}");
}

#[test]
fn crd_prints_the_generated_manifest() {
    let out = run(&["crd"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        watchpool_api::crd_yaml()
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_flag() {
    for (args, needle) in [
        (
            &["run", "--status-interval", "often"][..],
            "--status-interval",
        ),
        (&["run", "--admin-addr", "nowhere"][..], "--admin-addr"),
        (&["run", "--lease-duration", "1s"][..], "--lease-duration"),
        (&["run", "--trusted-namespaces", "UPPER"][..], "UPPER"),
        (&["run", "--log-format", "yaml"][..], "--log-format"),
        (&["run", "--no-such-flag"][..], "--no-such-flag"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // The environment twins are validated the same way.
    let out = Command::new(BIN)
        .env("WATCHPOOL_STATUS_INTERVAL", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("WATCHPOOL_STATUS_INTERVAL")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_pools_releases_the_lease_and_exits_within_the_timeout() {
    let c = cluster().await;
    c.policy("default", "p", configmap_spec());
    let mut op = start_operator(
        &c,
        &[
            "--leader-election",
            "--lease-duration",
            "5s",
            "--shutdown-timeout",
            "5s",
        ],
        &[("POD_NAME", "op-term"), ("POD_NAMESPACE", "default")],
    )
    .await;
    wait_for("Ready=True", Duration::from_secs(20), || {
        c.condition("default", "p", "Ready")
            .is_some_and(|r| r["status"] == "True")
    })
    .await;
    let holder = || {
        c.emu
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                "default",
                "watchpool-operator",
            )
            .ok()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    assert_eq!(holder(), "op-term");

    let sent = Instant::now();
    op.signal("TERM");
    let status = loop {
        if let Some(status) = op.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(6),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = sent.elapsed();
    eprintln!("exited {status} {took:?} after SIGTERM");
    assert!(status.success(), "{status}: {:#?}", op.logs());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(holder(), "", "lease still held after shutdown");
    assert!(op.has_log("stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_carry_the_reconcile_trace_id_and_no_colour_codes_in_a_pipe() {
    let c = cluster().await;
    c.policy("default", "logged", configmap_spec());
    let op = start_operator(&c, &["--log-format", "text"], &[]).await;
    wait_for("a reconcile log line", Duration::from_secs(20), || {
        op.has_log("policy applied")
    })
    .await;
    let line = op
        .logs()
        .into_iter()
        .find(|l| l.contains("policy applied"))
        .unwrap();
    assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
    assert!(line.contains("reconcile{"), "{line}");
    let trace_id = line
        .split("trace_id=")
        .nth(1)
        .unwrap()
        .split(['}', ' '])
        .next()
        .unwrap();
    assert_eq!(trace_id.len(), 32, "{line}");
    assert!(trace_id.chars().all(|ch| ch.is_ascii_hexdigit()), "{line}");
    assert!(
        line.contains("policy=logged") && line.contains("policy_namespace=default"),
        "{line}"
    );
}
