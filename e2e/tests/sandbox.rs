//! The sandbox binary, run briefly: it starts everything, injects its faults, and its summary
//! says that every cache matched the server; it leaves no process behind.

// Tests fail loudly on a broken environment; unwrap keeps them readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_short_run_injects_faults_and_every_cache_matches_the_server() {
    // Build (or find) the operator first, the way the sandbox itself would.
    watchpool_e2e::operator::binary().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watchpool-sandbox"))
        .args([
            "--duration",
            "15s",
            "--fault-interval",
            "4s",
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
    for line in stdout.lines().filter(|l| {
        l.starts_with("faults injected")
            || l.starts_with("time to recover")
            || l.starts_with("operator CPU")
            || l.starts_with("caches vs server")
    }) {
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
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the operator process {pid} was left running"
    );
}
