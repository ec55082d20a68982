#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy with warnings as errors, and
# all tests (unit, emulator, engine, operator, chart and end-to-end). Needs the real kubectl and
# helm, installed by e2e/tools/install-tools.sh (called here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash e2e/tools/install-tools.sh >/dev/null
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
