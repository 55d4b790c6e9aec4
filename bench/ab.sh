#!/usr/bin/env bash
# One A/B variant of typical ingest on a copy of a kept benchmark database (docs/benchmarks.md).
#
#   bench/ab.sh LABEL [SETUP_SQL]
#
# Copies the database a `KEEP_DB=1 bash bench/run.sh postgres 10000` run left behind
# (TEMPLATE, default svbench_10000_1) to ab_LABEL, runs SETUP_SQL on the copy (for example
# `DROP INDEX fleet_findings_fixable`, to measure what that index costs ingest), starts
# `scanvault serve` on it, posts every report of FILE with CLIENTS clients under fresh image
# names (`bench ingest`), and prints the CPU per report: the whole machine, the service, the
# client, and the rest (PostgreSQL, and whatever else runs). The copy is dropped afterwards.
#
# Env: BIN (default target/release/scanvault: set it to another build to compare code),
#      FILE (default $WORK/typical3k.ndjson: `gen_fleet.py --images 3000 --first-image 50000
#      --ndjson`), CLIENTS (8), TEMPLATE, ADMIN_URL, WORK, PORT,
#      MODE (`ingest`, the default: every report as a new image; `load`: reports keep their
#      images, so a file with several scans per image, such as `gen_fleet.py --images 1000
#      --scans-per-image 3 --first-image 70000 --ndjson`, also measures re-scans moving
#      their references to newer scans; `mixed`: as `ingest`, while READERS (4) clients
#      request the five analytics endpoints in turn, whose latencies it prints too; the CPU
#      per report then includes the reads; `query`: no reports, the five analytics endpoints
#      with 16 clients as bench/run.sh measures them).
# Run it on a quiet machine and alternate the variants: runs of the same code differ by a
# few percent on a quiet machine, and by up to a third on a noisy one (docs/benchmarks.md).
set -euo pipefail
LABEL=${1:?usage: bench/ab.sh LABEL [SETUP_SQL]}
SETUP=${2:-}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=${WORK:-/tmp/scanvault-bench}
FILE=${FILE:-$WORK/typical3k.ndjson}
CLIENTS=${CLIENTS:-8}
TEMPLATE=${TEMPLATE:-svbench_10000_1}
ADMIN_URL=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18190}
[ -f "$FILE" ] || { echo "no $FILE (see the header of this script)" >&2; exit 2; }
if [ -z "${BIN:-}" ]; then
  cargo build --release -p scanvault --bin scanvault --example bench
  BIN=$CARGO_TARGET_DIR/release/scanvault
fi
BENCH=$CARGO_TARGET_DIR/release/examples/bench
DB=ab_$LABEL
URL=${ADMIN_URL%/*}/$DB
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB TEMPLATE $TEMPLATE"
if [ -n "$SETUP" ]; then psql "$URL" -qc "$SETUP"; fi
source bench/serve.sh
trap 'kill $SERVER 2>/dev/null || true; psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
DATABASE_URL=$URL
export DATABASE_URL
start_server "$WORK/ab-$LABEL.log"
sleep 3   # start-up work (migrations check, pool warm-up) stays out of the CPU counters
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }   # user nice system irq softirq
own() { awk '{print $14 + $15}' "/proc/$1/stat"; }                      # utime + stime
s0=$(own $SERVER); t0=$(busy)
case ${MODE:-ingest} in
  ingest) POST=(ingest --prefix "ab-$LABEL-$$") ;;
  load) POST=(load) ;;
  mixed) POST=(mixed --prefix "ab-$LABEL-$$" --readers "${READERS:-4}" --to 2025-02-15T00:00:00Z) ;;
  query)
    # The analytics alone, as bench/run.sh's read phase: no reports are posted.
    "$BENCH" query --url "http://127.0.0.1:$PORT" --clients 16 --seconds "${SECONDS_PER_ENDPOINT:-10}" \
      --to 2025-02-15T00:00:00Z
    exit 0 ;;
  *) echo "MODE is ingest, load, mixed or query" >&2; exit 2 ;;
esac
/usr/bin/time -f '%U %S' -o "$WORK/ab-$LABEL.client" \
  "$BENCH" "${POST[@]}" --url "http://127.0.0.1:$PORT" --file "$FILE" --clients "$CLIENTS"
s1=$(own $SERVER); t1=$(busy)
n=$(grep -c . "$FILE")
read -r cu cs < "$WORK/ab-$LABEL.client"
hz=$(getconf CLK_TCK)
awk -v n="$n" -v hz="$hz" -v s=$((s1 - s0)) -v t=$((t1 - t0)) -v c="$cu $cs" -v label="$LABEL" 'BEGIN {
  split(c, cc, " "); client = (cc[1] + cc[2]) * 1000 / n
  total = t / hz * 1000 / n; service = s / hz * 1000 / n
  printf "%s: CPU per report: total %.2f ms, service %.2f ms, client %.2f ms (reading the file included), rest %.2f ms\n",
    label, total, service, client, total - service - client }'
