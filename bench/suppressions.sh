#!/usr/bin/env bash
# Analytics with and without 1,000 active suppressions, alternated on one database
# (docs/benchmarks.md, "Suppressions"). Load the fleet with `KEEP_DB=1 bash bench/run.sh
# postgres 10000`, start `scanvault serve` on that database as bench/serve.sh does, then:
#   URL=http://127.0.0.1:18089 DATABASE_URL=postgres://…/svbench_10000_1 bash bench/suppressions.sh
# A = no active suppression, B = the 1,000 of bench/suppressions/make_set.py. After each
# switch the script runs ANALYZE suppressions, as autovacuum would.
set -euo pipefail
cd "$(dirname "$0")/.."
URL=${URL:-http://127.0.0.1:18089}
PAIRS=${PAIRS:-3}
WORK=${WORK:-/tmp/scanvault-bench}
BENCH=${CARGO_TARGET_DIR:-target}/release/examples/bench
SET=$WORK/suppressions.json
mkdir -p "$WORK"
[ -f "$SET" ] || python3 bench/suppressions/make_set.py "$DATABASE_URL" "$SET"
warm() { curl -sf -o /dev/null "$URL/analytics/vulnerabilities/summary"; sleep 2; }
analyze() { psql "$DATABASE_URL" -qc 'ANALYZE suppressions'; }
query() { "$BENCH" query --url "$URL" --clients 16 --seconds 10 --to 2025-02-15T00:00:00Z; }
for i in $(seq 1 "$PAIRS"); do
  echo "=== A$i"; warm; query
  python3 bench/suppressions/switch.py "$URL" "$SET" create; analyze
  echo "=== B$i"; warm; query
  python3 bench/suppressions/switch.py "$URL" "$SET" delete; analyze
done
