#!/usr/bin/env bash
# Re-match versus re-scan of the same images, alternated in one run.
#
#   bench/rematch.sh [KIT_DIR]         # from the repository root; KIT_DIR: the shared e2e kit
#
# The requirement it measures: re-matching N stored images (POST /rematch: `trivy sbom` on each
# digest's stored inventory, no registry) is at least 10x faster than re-scanning the same N
# images from a registry (POST /scan-jobs force=true: resolve, `trivy image`, ingest).
#
# What it does, all on this machine, everything under WORK (deleted at the end unless KEEP=1):
#  1. bench/rematch/make_specs.py writes N image specs (alpine 3.22 with 320 packages, an app
#     layer with 30 npm packages and 25 crates, and a LAYER_MB layer of incompressible bytes
#     seeded per image, so no two images share it) and an advisory file; the kit's
#     make-trivy-db.py builds a Trivy DB from it, make-image.py the images (OCI layouts), and
#     the kit's registry.sh starts a registry of its own (random port) and pushes them.
#  2. Starts `trivy server` on a copy of that DB and `scanvault serve` (BIN; AUTH_DISABLED,
#     worker on, WORKER_CONCURRENCY=CONCURRENCY, TRIVY_SERVER_URL, REMATCH_INTERVAL=0 so only
#     the benchmark starts re-match rounds) on a fresh SQLite DATA_DIR (BACKEND=sqlite) or
#     a fresh PostgreSQL database svbench_rematch (BACKEND=postgres, ADMIN_URL; dropped after).
#  3. A first scan round (`warm`, not timed: it stores the images and makes their
#     inventories with `trivy convert`), then ROUNDS pairs of
#       A: re-scan: POST /scan-jobs {"image": REF, "force": true} for the N images, wait;
#       B: re-match: POST /rematch (one batch of N jobs), wait for GET /scan-batches/{id}.
#     Before every round (A and B alike) the Trivy server is restarted on a fresh copy of the
#     DB: its scan cache (the layers' analysis, which client/server mode keeps on the server,
#     not in the client's --cache-dir) is empty, so each re-scan pulls and analyses every
#     layer, as a re-scan of new or rotated images does. RESCAN_CACHE=keep keeps one server
#     for the whole run instead: re-scans then skip the layers they analysed before.
#  4. bench/rematch/rounds.py report: each round's span on the service's clock (first job
#     created -> last job completed) and rate, the median B/A speed ratio, each stage's mean
#     time per job (GET /metrics), and a check that every job completed and every re-match
#     gave the same Vuln* counts as the scans of its digest (exit 1 otherwise).
#
# Env: N (8), ROUNDS (3), LAYER_MB (100), CONCURRENCY (2), BACKEND (sqlite | postgres),
#      ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres), PORT (18192),
#      BIN (default: cargo build --release -p scanvault, then CARGO_TARGET_DIR/release/scanvault),
#      TRIVY (trivy from PATH), TRIVY_EXTRA_ARGS ("--skip-db-update --offline-scan"),
#      SCANVAULT_SHARED (the shared test data; the kit is $SCANVAULT_SHARED/e2e-kit, default
#      ../shared/e2e-kit), WORK (default: a new mktemp -d), OCI_CACHE (a directory where
#      the built images are kept between runs: rebuilt only when their spec changed), KEEP=1.
# Needs: python3, curl, skopeo and docker-registry (the kit's install.sh), psql for postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${1:-${KIT:-${SCANVAULT_SHARED:-../shared}/e2e-kit}}
[ -f "$KIT/make-image.py" ] || { echo "no e2e kit at $KIT (pass its dir or set SCANVAULT_SHARED)" >&2; exit 2; }
KIT=$(cd "$KIT" && pwd)
N=${N:-8}
ROUNDS=${ROUNDS:-3}
LAYER_MB=${LAYER_MB:-100}
CONCURRENCY=${CONCURRENCY:-2}
BACKEND=${BACKEND:-sqlite}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18192}
TRIVY=${TRIVY:-$(command -v trivy || echo /usr/local/bin/trivy)}
EXTRA=${TRIVY_EXTRA_ARGS:---skip-db-update --offline-scan}
RESCAN_CACHE=${RESCAN_CACHE:-fresh}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p scanvault --bin scanvault
  BIN=$CARGO_TARGET_DIR/release/scanvault
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
WORK=${WORK:-$(mktemp -d -t scanvault-rematch.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OCI=${OCI_CACHE:-$WORK/oci}
mkdir -p "$OCI"
HERE=$(pwd)/bench/rematch
DB=svbench_rematch
SERVER= TSERVER= REG_STATE=
cleanup() {
  set +e
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ -n "$TSERVER" ] && kill "$TSERVER" 2>/dev/null && wait "$TSERVER" 2>/dev/null
  [ -n "$REG_STATE" ] && bash "$KIT/registry.sh" stop "$REG_STATE" >/dev/null 2>&1
  [ "$BACKEND" = postgres ] && psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { echo "== $(date -u +%H:%M:%S) $*"; }

step "specs: N=$N, LAYER_MB=$LAYER_MB"
python3 "$HERE/make_specs.py" "$WORK/specs" --images "$N" --layer-mb "$LAYER_MB" > "$WORK/specs.txt"
python3 "$KIT/make-trivy-db.py" "$WORK/specs/advisories.json" "$WORK/db" >/dev/null

step "images (OCI layouts in $OCI)"
while read -r spec ref; do
  dir=$OCI/$(basename "$spec" .json)
  sum=$(sha256sum < "$spec" | cut -d' ' -f1)
  if [ "$(cat "$dir.spec-sha256" 2>/dev/null)" != "$sum" ]; then
    rm -rf "$dir"
    python3 "$KIT/make-image.py" "$spec" --oci-dir "$dir" >/dev/null
    echo "$sum" > "$dir.spec-sha256"
  fi
done < "$WORK/specs.txt"
du -sh "$OCI" | sed 's/^/   /'

step "registry"
unset E2E_REGISTRY_PORT
eval "$(E2E_REGISTRY_STATE=$WORK/registry bash "$KIT/registry.sh" start)"
REG_STATE=$E2E_REGISTRY_STATE
REFS=()
while read -r spec ref; do
  bash "$KIT/registry.sh" push "oci:$OCI/$(basename "$spec" .json):${ref##*:}" "$ref" >/dev/null
  REFS+=("$E2E_REGISTRY/$ref")
done < "$WORK/specs.txt"

TPORT=$(free_port)
start_trivy() {   # a trivy server on a fresh copy of the DB (an empty scan cache)
  if [ -n "$TSERVER" ]; then kill "$TSERVER"; wait "$TSERVER" 2>/dev/null || true; fi
  rm -rf "$WORK/server-cache" && cp -r "$WORK/db" "$WORK/server-cache"
  "$TRIVY" server --listen "127.0.0.1:$TPORT" --cache-dir "$WORK/server-cache" --skip-db-update \
    >> "$WORK/trivy-server.log" 2>&1 &
  TSERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TPORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "trivy server did not start (see $WORK/trivy-server.log)" >&2; exit 1
}
fresh_trivy() { [ "$RESCAN_CACHE" = keep ] || start_trivy; }

step "scanvault serve ($BACKEND), trivy server on :$TPORT"
start_trivy
if [ "$BACKEND" = postgres ]; then
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  export DATABASE_URL=${ADMIN_URL%/*}/$DB
else
  unset DATABASE_URL DATABASE_URL_FILE || true
  mkdir -p "$WORK/data"
  export DATA_DIR=$WORK/data
fi
mkdir -p "$WORK/client-cache"
AUTH_DISABLED=true RATE_LIMIT_PER_SECOND=0 SERVER_HOST=127.0.0.1 SERVER_PORT=$PORT \
  WORKER_CONCURRENCY=$CONCURRENCY REMATCH_INTERVAL=0 REGISTRY_INSECURE_HOSTS=$E2E_REGISTRY \
  TRIVY_PATH=$TRIVY TRIVY_SERVER_URL=http://127.0.0.1:$TPORT TRIVY_CACHE_DIR=$WORK/client-cache \
  TRIVY_EXTRA_ARGS=$EXTRA LOG_LEVEL=info "$BIN" serve > "$WORK/scanvault.log" 2>&1 &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/health" >/dev/null || { echo "scanvault did not start:" >&2; tail -20 "$WORK/scanvault.log" >&2; exit 1; }

R=$WORK/rounds.jsonl
step "warm-up scan round (first scans: images stored, inventories made; not timed)"
python3 "$HERE/rounds.py" scan "$URL" "$R" warm "${REFS[@]}"
for i in $(seq "$ROUNDS"); do
  fresh_trivy
  python3 "$HERE/rounds.py" scan "$URL" "$R" "A$i" "${REFS[@]}"
  fresh_trivy
  python3 "$HERE/rounds.py" rematch "$URL" "$R" "B$i" "$N"
done
step "report (N=$N, LAYER_MB=$LAYER_MB, CONCURRENCY=$CONCURRENCY, $BACKEND, trivy client/server, RESCAN_CACHE=$RESCAN_CACHE)"
python3 "$HERE/rounds.py" report "$R"
