#!/usr/bin/env bash
# Analytics reads while deltas are pending (PostgreSQL; docs/benchmarks.md).
#
#   bench/pending.sh
#
# Copies the database a `KEEP_DB=1 bash bench/run.sh postgres 10000` run left behind
# (TEMPLATE, default svbench_10000_1), starts `scanvault serve` on the copy, and for each
# N in ROUNDS appends N pending deltas to every CVE of the fleet (what a few seconds of
# steady ingest leave between two compactions), holds off the compactor with a SHARE lock
# on `fleet_cve_deltas` for HOLD seconds, and times REQUESTS sequential requests of the
# summary, top CVEs and one CVE's images meanwhile. The copy is dropped afterwards.
#
# Env: BIN (default target/release/scanvault), TEMPLATE, ADMIN_URL, PORT, WORK,
#      ROUNDS (default "1 3 8"), HOLD (6), REQUESTS (6).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-/tmp/scanvault-bench}
TEMPLATE=${TEMPLATE:-svbench_10000_1}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18191}
HOLD=${HOLD:-6}
REQUESTS=${REQUESTS:-6}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p scanvault --bin scanvault
  BIN=$CARGO_TARGET_DIR/release/scanvault
fi
mkdir -p "$WORK"
DB=pending_$$
URL=${ADMIN_URL%/*}/$DB
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB TEMPLATE $TEMPLATE"
source bench/serve.sh
trap 'kill $SERVER 2>/dev/null || true; psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
DATABASE_URL=$URL
export DATABASE_URL
start_server "$WORK/pending.log"
sleep 3
CVE=$(psql -Atq "$URL" -c "SELECT vulnerability_id FROM fleet_cves ORDER BY images DESC LIMIT 1")
timed() {   # $1: path under /analytics/vulnerabilities/
  printf '%-36s' "$1"
  for _ in $(seq "$REQUESTS"); do
    curl -s -o /dev/null -w '%{time_total}s/%{http_code} ' "http://127.0.0.1:$PORT/analytics/vulnerabilities/$1"
  done
  echo
}
for n in ${ROUNDS:-1 3 8}; do
  psql -q "$URL" -c "INSERT INTO fleet_cve_deltas SELECT vulnerability_id, 1, 0, 1, 0, 0, 0, 0 \
    FROM fleet_cves, generate_series(1, $n)"
  psql -q "$URL" -c "BEGIN" -c "LOCK fleet_cve_deltas IN SHARE MODE" -c "SELECT pg_sleep($HOLD)" >/dev/null &
  LOCKER=$!
  sleep 0.5
  echo "== $(psql -Atq "$URL" -c "SELECT count(*) FROM fleet_cve_deltas") pending delta rows"
  timed summary
  timed "top-cves?limit=20"
  timed "cve/$CVE/images?limit=100"
  wait "$LOCKER"
  sleep 3   # the compactor folds them
done
