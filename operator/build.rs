//! Records the git commit and the rustc version for `watchpool-operator version`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WATCHPOOL_GIT_COMMIT");
    println!("cargo:rerun-if-changed=../.git/HEAD");
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
