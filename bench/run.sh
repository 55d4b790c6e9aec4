#!/usr/bin/env bash
# Fleet-analytics benchmark (docs/benchmarks.md). Usage:
#   bench/run.sh postgres 10000     # or: bench/run.sh sqlite 10000
# Builds release binaries, starts `scanvault serve` on a fresh database, streams a fleet from
# gen_fleet.py through POST /scans, then measures the analytics endpoints, ingest
# throughput of typical reports (8 clients), the latency of a 2,000-finding report, and the
# analytics again while reports arrive (`bench mixed`).
set -euo pipefail
BACKEND=${1:-postgres}
IMAGES=${2:-10000}
SCANS=${SCANS:-3}
# COPIES=10 loads the generated fleet ten times, copies 2..10 under renamed images
# (`bench load --rename`): 10,000 generated images become a fleet of 100,000.
COPIES=${COPIES:-1}
PORT=${PORT:-18089}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WORK=${WORK:-/tmp/scanvault-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cd "$(dirname "$0")/.."
# The generator ships with the shared test data (as for the test suite: SCANVAULT_SHARED).
GEN=${GEN:-${SCANVAULT_SHARED:-../shared}/bench/gen_fleet.py}
gen() {   # gen_fleet.py with these arguments, when a data file is not there yet
  [ -f "$GEN" ] || { echo "gen_fleet.py not found at $GEN (set GEN or SCANVAULT_SHARED)" >&2; exit 2; }
  python3 "$GEN" "$@"
}
cargo build --release -p scanvault --bin scanvault --example bench
BIN=$CARGO_TARGET_DIR/release/scanvault
BENCH=$CARGO_TARGET_DIR/release/examples/bench
mkdir -p "$WORK"
DB=svbench_${IMAGES}_${COPIES}
if [ "$BACKEND" = postgres ]; then
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  export DATABASE_URL=${ADMIN_URL%/*}/$DB
else
  rm -rf "$WORK/sqlite" && mkdir -p "$WORK/sqlite"
  export DATA_DIR=$WORK/sqlite
  unset DATABASE_URL || true
fi
source bench/serve.sh
trap 'kill $SERVER 2>/dev/null || true' EXIT
start_server "$WORK/server-$BACKEND.log"
URL=http://127.0.0.1:$PORT
[ -f "$WORK/typical.ndjson" ] || gen --images 1000 --first-image 50000 --ndjson "$WORK/typical.ndjson"
[ -f "$WORK/typical3k.ndjson" ] || gen --images 3000 --first-image 50000 --ndjson "$WORK/typical3k.ndjson"
[ -f "$WORK/big2000.ndjson" ] || gen --images 1 --first-image 90000 --vulns 2000 --ndjson "$WORK/big2000.ndjson"
echo "== load $IMAGES images x $SCANS scans ($BACKEND)"
FLEET=$WORK/fleet-$IMAGES-$SCANS.ndjson
if [ -f "$FLEET" ]; then
  "$BENCH" load --url "$URL" --file "$FLEET" --clients 8
else
  gen --images "$IMAGES" --scans-per-image "$SCANS" --ndjson | tee "$FLEET" | "$BENCH" load --url "$URL" --file - --clients 8
fi
# STATS=1 (PostgreSQL with pg_stat_statements in shared_preload_libraries): after each
# ingest phase, print what its statements cost in the database and the WAL it wrote.
stats_reset() {
  [ "${STATS:-0}" = 1 ] && [ "$BACKEND" = postgres ] || return 0
  psql "$DATABASE_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
}
stats_print() {
  [ "${STATS:-0}" = 1 ] && [ "$BACKEND" = postgres ] || return 0
  psql "$DATABASE_URL" -c "SELECT wal_records, wal_fpi, pg_size_pretty(wal_bytes) AS wal FROM pg_stat_wal" \
    -c "SELECT calls, round(total_exec_time::numeric) AS total_ms, round((total_exec_time / calls)::numeric, 2) AS ms_per_call, \
        shared_blks_read AS blks_read, shared_blks_dirtied AS blks_dirtied, left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS statement \
        FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT 12"
}
measure() {   # $1: a label for this point (fresh image names for the ingest phases)
  # Catch up on maintenance first, as autovacuum would (this machine's PostgreSQL may run
  # without it, and right after a load autovacuum would be busy for a minute or more, which
  # would be measured with the phases below). SETTLE=0 measures straight away.
  if [ "$BACKEND" = postgres ] && [ "${SETTLE:-1}" = 1 ]; then
    echo "== VACUUM ANALYZE after the load"
    psql "$DATABASE_URL" -qc "VACUUM ANALYZE"
  fi
  sleep 3   # let the compactor fold the last deltas
  echo "== analytics ($BACKEND, 16 clients, $1)"
  "$BENCH" query --url "$URL" --clients 16 --seconds ${SECONDS_PER_ENDPOINT:-10} --to 2025-02-15T00:00:00Z
  echo "== ingest of typical reports ($BACKEND, 8 clients, new images, $1)"
  stats_reset
  "$BENCH" ingest --url "$URL" --file "$WORK/typical.ndjson" --clients 8 --prefix "ingest-$1"
  stats_print
  echo "== one 2,000-finding report at a time ($BACKEND, $1)"
  stats_reset
  "$BENCH" single --url "$URL" --file "$WORK/big2000.ndjson" --repeat 10 --prefix "big-$1"
  stats_print
  # Reads while reports arrive: the compactor folds deltas every 2 s, so the reads here
  # include the pending deltas that steady ingest leaves (informational, no target).
  echo "== analytics while typical reports are ingested ($BACKEND, 8 writers, 4 readers, $1)"
  "$BENCH" mixed --url "$URL" --file "$WORK/typical3k.ndjson" --clients 8 --readers 4 \
    --prefix "mixed-$1" --to 2025-02-15T00:00:00Z
  # The analytics again, as a deployment sees them after a burst of ingest: no VACUUM
  # first, only a few quiet seconds (the compactor's; the delta tables the burst grew are
  # read by summary, top-cves and cve images).
  sleep 6
  echo "== analytics after the ingest phases, no VACUUM ($BACKEND, 16 clients, $1)"
  "$BENCH" query --url "$URL" --clients 16 --seconds ${SECONDS_AFTER:-5} --to 2025-02-15T00:00:00Z
}
measure "$IMAGES-images"
if [ "$COPIES" -gt 1 ]; then
  for k in $(seq 2 "$COPIES"); do
    echo "== load copy $k of $COPIES ($BACKEND)"
    "$BENCH" load --url "$URL" --file "$FLEET" --clients 8 --rename "copy$k" --scans-per-image "$SCANS"
  done
  measure "$((IMAGES * COPIES))-images"
fi
kill $SERVER; wait $SERVER 2>/dev/null || true
# KEEP_DB=1 keeps the PostgreSQL database for a look afterwards (plans, sizes).
if [ "$BACKEND" = postgres ] && [ "${KEEP_DB:-0}" != 1 ]; then psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; fi
