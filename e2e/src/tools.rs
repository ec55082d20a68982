//! Locating the real `kubectl` and `helm` binaries the tests drive.
//!
//! They are installed by `e2e/tools/install-tools.sh` into `.tools/bin` at the workspace root
//! (or `$WATCHPOOL_TOOLS_DIR/bin`). A test that needs one calls [`kubectl`] or [`helm`]: when the
//! binary is missing the test fails with the command that installs it, in CI and locally alike.

use std::path::PathBuf;

/// The workspace root (the parent of `e2e/`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The folder holding the tool binaries.
pub fn tools_bin_dir() -> PathBuf {
    match std::env::var_os("WATCHPOOL_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir).join("bin"),
        None => workspace_root().join(".tools").join("bin"),
    }
}

fn tool(name: &str) -> PathBuf {
    let path = tools_bin_dir().join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: run `bash e2e/tools/install-tools.sh` first",
        path.display()
    );
    path
}

/// The real kubectl 1.35.
pub fn kubectl() -> PathBuf {
    tool("kubectl")
}

/// The real helm 4.
pub fn helm() -> PathBuf {
    tool("helm")
}
