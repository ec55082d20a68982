//! Records the git commit and the rustc version for `watchpool-operator version`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WATCHPOOL_GIT_COMMIT");
    watch_git_head();
    let commit = std::env::var("WATCHPOOL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| run("git", &["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WATCHPOOL_GIT_COMMIT={}", commit.trim());
    println!(
        "cargo:rustc-env=WATCHPOOL_RUSTC_VERSION={}",
        rustc_version.trim()
    );
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Re-runs this script when the checked-out commit changes: `HEAD` itself, the branch it points
/// to, and the packed refs (only paths that exist, or cargo would re-run it on every build).
fn watch_git_head() {
    let Some(git_dir) = run("git", &["rev-parse", "--git-dir"]) else {
        return;
    };
    let git_dir = std::path::PathBuf::from(git_dir);
    let mut paths = vec![git_dir.join("HEAD"), git_dir.join("packed-refs")];
    if let Some(reference) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
        paths.push(git_dir.join(reference));
    }
    for path in paths.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
