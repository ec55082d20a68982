//! The sandbox binary, run briefly: it starts everything, injects its faults, and its summary
//! says that every cache matched the server; it leaves no process behind.

// Tests fail loudly on a broken environment; unwrap keeps them readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use watchpool_e2e::operator::has_exited;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_short_run_injects_faults_and_every_cache_matches_the_server() {
    // Build (or find) the operator first, the way the sandbox itself would.
    watchpool_e2e::operator::binary().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watchpool-sandbox"))
        .args([
            "--duration",
            "15s",
            "--fault-interval",
            "10s",
            "--objects",
            "40",
            "--refresh",
            "5s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the sandbox finishes within its duration plus the convergence time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the sandbox failed:\n{stdout}\n{stderr}"
    );
    if let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("summary: ")) {
        println!("E2E-FIGURES row=sandbox {line}");
    }
    assert!(
        stdout.contains("fault: reset"),
        "a reset was injected:\n{stdout}"
    );
    assert!(
        stdout.contains("fault: half-open-stall"),
        "a stall was injected:\n{stdout}"
    );
    assert!(
        stdout.contains("fault: compaction+reset(410)"),
        "a 410 was provoked:\n{stdout}"
    );
    assert!(
        stdout.contains("READY"),
        "a live table was printed:\n{stdout}"
    );
    assert!(
        stdout.contains("every cache matched the server: yes"),
        "every cache matched:\n{stdout}"
    );
    // No operator left behind: the pid it printed is gone.
    let pid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("operator ready (pid "))
        .and_then(|rest| rest.split(',').next())
        .expect("the operator's pid is printed");
    assert!(
        has_exited(pid.parse().expect("the printed pid is a number")),
        "the operator process {pid} was left running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_serves_its_kubeconfig_to_kubectl_and_stops_cleanly_on_ctrl_c() {
    use tokio::io::AsyncBufReadExt;

    watchpool_e2e::operator::binary().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watchpool-sandbox"))
        .args([
            "--duration",
            "120s",
            "--objects",
            "20",
            "--print-kubeconfig",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sandbox_pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut kubeconfig, mut operator_pid, mut seen) = (None, None, Vec::new());
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(path) = line.strip_prefix("kubeconfig: ") {
                kubeconfig = Some(path.to_owned());
            }
            if let Some(rest) = line.strip_prefix("operator ready (pid ") {
                operator_pid = rest.split(',').next().map(str::to_owned);
            }
            let applied = line.contains("policies applied");
            seen.push(line);
            if applied {
                return;
            }
        }
    })
    .await;
    assert!(started.is_ok(), "the sandbox started:\n{}", seen.join("\n"));
    let kubeconfig = kubeconfig.expect("--print-kubeconfig prints the path");
    let operator_pid = operator_pid.expect("the operator's pid is printed");
    // A user's own kubectl sees the sandbox's policies while it runs.
    let cache = watchpool_e2e::tempdir::TempDir::new("sandbox-kubectl").unwrap();
    let kubectl = watchpool_e2e::kubectl::Kubectl::new(
        watchpool_e2e::tools::kubectl(),
        std::path::Path::new(&kubeconfig),
        cache.path(),
    );
    let names = kubectl
        .run(
            &[
                "get",
                "wp",
                "-n",
                watchpool_e2e::sandbox::NAMESPACE,
                "-o",
                "name",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(
        names.lines().count() >= 3,
        "kubectl lists the sandbox's policies: {names}"
    );
    // Ctrl-C.
    let status = std::process::Command::new("kill")
        .args(["-INT", &sandbox_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest.join("\n")
    })
    .await
    .expect("the sandbox stops within 30 s of Ctrl-C");
    let exited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(exited.is_ok(), "the sandbox process exited");
    assert!(
        rest.contains("interrupted: stopping"),
        "it says why it stops:\n{rest}"
    );
    assert!(
        rest.contains("watchpool sandbox summary"),
        "it prints a summary:\n{rest}"
    );
    assert!(
        has_exited(operator_pid.parse().expect("the printed pid is a number")),
        "the operator process {operator_pid} was left running"
    );
    assert!(
        !std::path::Path::new(&kubeconfig).exists(),
        "the sandbox's files are removed"
    );
}
