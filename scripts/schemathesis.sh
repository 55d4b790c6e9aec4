#!/usr/bin/env bash
# scripts/schemathesis.sh - property-based API testing of ScanVault with schemathesis (PyPI).
#
#   bash scripts/schemathesis.sh
#
# For each backend - embedded SQLite always, PostgreSQL too when TEST_DATABASE_URL is set
# (in a fresh database created from it with psql and dropped afterwards) - it:
#   1. starts `scanvault serve` on 127.0.0.1 (port chosen by the OS, read from the JSON
#      `listening` log line), scan worker off, rate limit off, authentication ON
#   2. creates an admin key with `scanvault apikey create --role admin` (same database)
#   3. seeds data so the GET endpoints find something: every report in
#      $SCANVAULT_SHARED/corpus/trivy/ (POST /scans) and two scan jobs (POST /scan-jobs)
#   4. runs `schemathesis run <server>/swagger/openapi.json` with `Authorization: Bearer <key>`
#      and the checks below, a bounded number of examples per operation, in a bounded time,
#      in two passes with two admin keys:
#        main        every operation except DELETE /admin/api-keys/{id}
#        admin-keys  POST /admin/api-keys and DELETE /admin/api-keys/{id}
#      schemathesis feeds ids it sees in responses to other operations, so in one pass it
#      revokes the very key it runs with (learnt from GET /admin/api-keys) and every later
#      request is a 401. The second pass sees only the ids of keys it created itself.
# Every operation is tested, DELETEs included; a deleted seed scan only means less data for
# the GETs that follow.
#
# Checks (SCHEMATHESIS_CHECKS): not_a_server_error (no 5xx), response_schema_conformance
# (every documented response body matches its schema), status_code_conformance (every
# status is documented), content_type_conformance (every Content-Type is documented).
#
# Exit code: 0 only when every run finished with zero failures and zero errors; 1 otherwise
# (a failure summary with reproducing curl commands is printed, and the full output and the
# JUnit/NDJSON reports stay in <target>/schemathesis/<backend>/).
#
# Env:
#   SCANVAULT_BIN=PATH             binary to test (default: `cargo build --release -p scanvault`,
#                                  then <target>/release/scanvault)
#   SCANVAULT_SHARED=DIR           shared dir holding corpus/ (default <repo>/../shared)
#   TEST_DATABASE_URL=URL          also run against PostgreSQL (the role must be able to CREATE DATABASE)
#   SCHEMATHESIS_BACKENDS=LIST     default "sqlite,postgres" (postgres only if TEST_DATABASE_URL is set)
#   SCHEMATHESIS_MAX_EXAMPLES=N    test cases per operation and phase (default 30)
#   SCHEMATHESIS_TIMEOUT=SECS      hard limit of one schemathesis run (default 300)
#   SCHEMATHESIS_SEED=N            Hypothesis seed (default: random; printed, to reproduce a run)
#   SCHEMATHESIS_CHECKS=LIST       default above
#   SCHEMATHESIS_PHASES=LIST       default examples,coverage,fuzzing,stateful
#   CARGO_TARGET_DIR               where the venv, the logs and the default binary live
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

st_log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
st_die() { printf 'schemathesis.sh: ERROR: %s\n' "$*" >&2; exit 1; }

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
OUT_DIR="$TARGET_DIR/schemathesis"
VENV="$TARGET_DIR/schemathesis-venv"
REQUIREMENTS="$REPO_ROOT/scripts/schemathesis/requirements.txt"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-30}"
RUN_TIMEOUT="${SCHEMATHESIS_TIMEOUT:-300}"
SEED="${SCHEMATHESIS_SEED:-$(( RANDOM << 15 | RANDOM ))}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance}"
PHASES="${SCHEMATHESIS_PHASES:-examples,coverage,fuzzing,stateful}"
BACKENDS="${SCHEMATHESIS_BACKENDS:-sqlite,postgres}"
SHARED="${SCANVAULT_SHARED:-$REPO_ROOT/../shared}"
mkdir -p "$OUT_DIR"

case "$MAX_EXAMPLES" in ''|*[!0-9]*) st_die "SCHEMATHESIS_MAX_EXAMPLES must be a number (got '$MAX_EXAMPLES')" ;; esac
case "$RUN_TIMEOUT" in ''|*[!0-9]*) st_die "SCHEMATHESIS_TIMEOUT must be a number of seconds (got '$RUN_TIMEOUT')" ;; esac
[ -d "$SHARED/corpus/trivy" ] || st_die "$SHARED/corpus/trivy missing: set SCANVAULT_SHARED to the dir holding corpus/"
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || st_die "$tool is needed (apt-get install $tool)"
done

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
WORK_DIRS=()
PG_DBS=()   # "admin_url db_name"
# shellcheck disable=SC2317  # invoked by traps
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null; fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
# shellcheck disable=SC2317
cleanup() {
    local rc=$?
    set +e
    stop_server
    local d entry
    for d in ${WORK_DIRS[@]+"${WORK_DIRS[@]}"}; do rm -rf "$d"; done
    for entry in ${PG_DBS[@]+"${PG_DBS[@]}"}; do
        psql "${entry% *}" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS ${entry##* } WITH (FORCE)" >/dev/null 2>&1 </dev/null
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- schemathesis (pinned, in a venv)
install_schemathesis() {
    local want have=""
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    [ -f "$VENV/.requirements.sha256" ] && have="$(cat "$VENV/.requirements.sha256")"
    if [ "$want" = "$have" ] && "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
        return 0
    fi
    local py=""
    for p in python3.11 python3; do command -v "$p" >/dev/null 2>&1 && { py="$p"; break; }; done
    [ -n "$py" ] || st_die "python3 is needed to install schemathesis"
    st_log "installing schemathesis into $VENV (pip, pinned in scripts/schemathesis/requirements.txt)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" || st_die "$py -m venv failed (Debian: apt-get install python3-venv)"
    local try rc=0
    for try in 1 2 3; do
        rc=0
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
            >"$OUT_DIR/pip-install.log" 2>&1 </dev/null || rc=$?
        [ $rc -eq 0 ] && break
        [ $try -lt 3 ] && { st_log "pip install failed (attempt $try/3); retrying in $((try * 5)) s"; sleep $((try * 5)); }
    done
    if [ $rc -ne 0 ]; then tail -n 20 "$OUT_DIR/pip-install.log" >&2; st_die "pip install -r $REQUIREMENTS failed"; fi
    echo "$want" >"$VENV/.requirements.sha256"
}
install_schemathesis
ST="$VENV/bin/schemathesis"
st_log "$("$ST" --version)"

# ---------------------------------------------------------------- the binary
if [ -n "${SCANVAULT_BIN:-}" ]; then
    BIN="$SCANVAULT_BIN"
else
    st_log "cargo build --release -p scanvault"
    cargo build --release -p scanvault --quiet || st_die "cargo build failed"
    BIN="$TARGET_DIR/release/scanvault"
fi
[ -x "$BIN" ] || st_die "no scanvault binary at $BIN"
st_log "binary: $BIN"

# A child environment without the caller's ScanVault settings.
clean_env=(env -u DATABASE_URL -u DATABASE_URL_FILE -u DATA_DIR -u SERVER_PORT -u SERVER_HOST
    -u AUTH_DISABLED -u LOG_FORMAT -u LOG_LEVEL -u BOOTSTRAP_ADMIN_KEY -u BOOTSTRAP_ADMIN_KEY_FILE
    -u RUST_LOG -u METRICS_PORT)

# ---------------------------------------------------------------- one run
# new_key NAME LOG ENV... : prints a new admin key made by `scanvault apikey create`.
new_key() {
    local name="$1" log="$2" k
    shift 2
    k="$("${clean_env[@]}" "$@" "$BIN" apikey create --role admin --name schemathesis 2>>"$log" </dev/null | awk 'END { print $NF }')" ||
        { st_log "[$name] scanvault apikey create failed (log: $log)"; return 1; }
    case "$k" in svk_*) ;; *) st_log "[$name] apikey create printed no key (got '$k')"; return 1 ;; esac
    printf '%s\n' "$k"
}

# run_schemathesis BACKEND PASS BASE_URL KEY OUT_DIR [FILTER ARGS...]: one schemathesis run.
# Appends its summary to RUN_SUMMARY; returns its exit code.
run_schemathesis() {
    local name="$1" pass="$2" base="$3" key="$4" out="$5/$2" rc=0
    shift 5
    mkdir -p "$out"
    st_log "[$name/$pass] schemathesis: checks=$CHECKS phases=$PHASES max-examples=$MAX_EXAMPLES seed=$SEED timeout=${RUN_TIMEOUT}s"
    timeout --kill-after=10 "$RUN_TIMEOUT" "$ST" run "$base/swagger/openapi.json" \
        --header "Authorization: Bearer $key" \
        --checks "$CHECKS" \
        --phases "$PHASES" \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers 2 \
        --request-timeout 30 \
        --generation-database none \
        --generation-with-security-parameters false \
        --suppress-health-check all \
        --continue-on-failure \
        --no-color \
        --report junit,vcr --report-dir "$out" \
        "$@" \
        >"$out/schemathesis.out" 2>&1 </dev/null || rc=$?
    local summary
    summary="$(sed -n '/^=* SUMMARY =*$/,$p' "$out/schemathesis.out")"
    RUN_SUMMARY+="$pass: $(printf '%s\n' "$summary" | grep -A1 -E '^(Test cases|API Operations):' | grep -vE '^(--|Test cases:|API Operations:)' | sed 's/^ *//' | tr '\n' ' ')"$'\n'
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        st_log "[$name/$pass] schemathesis did not finish within ${RUN_TIMEOUT}s (SCHEMATHESIS_TIMEOUT)"
    fi
    if [ $rc -ne 0 ]; then
        # Failures first (with their curl reproductions), then the summary.
        sed -n '/^=* FAILURES =*$/,/^=* WARNINGS =*$/p' "$out/schemathesis.out" | head -n 400 >&2
        [ -n "$summary" ] || tail -n 40 "$out/schemathesis.out" >&2
    fi
    printf '%s\n' "$summary" | grep -vE '^ *- (JUnit|VCR):' >&2
    st_log "[$name/$pass] rc=$rc (output: $out/schemathesis.out)"
    return $rc
}

# run_backend NAME DATABASE_URL (empty: SQLite in a fresh DATA_DIR). Sets RUN_RC, RUN_SUMMARY.
run_backend() {
    local name="$1" db_url="$2"
    RUN_SUMMARY=""
    local dir log out
    dir="$(mktemp -d "${TMPDIR:-/tmp}/scanvault-schemathesis.XXXXXX")"
    WORK_DIRS+=("$dir")
    out="$OUT_DIR/$name"
    rm -rf "$out"; mkdir -p "$out"
    log="$out/server.log"
    local db_env=()
    if [ -n "$db_url" ]; then db_env=(DATABASE_URL="$db_url"); else db_env=(DATA_DIR="$dir/data"); fi

    "${clean_env[@]}" "${db_env[@]}" SERVER_HOST=127.0.0.1 SERVER_PORT=0 LOG_FORMAT=json \
        WORKER_CONCURRENCY=0 RATE_LIMIT_PER_SECOND=0 CLEANUP_INTERVAL=1h \
        "$BIN" serve >/dev/null 2>"$log" </dev/null &
    SERVER_PID=$!
    local addr=""
    for _ in $(seq 1 600); do
        addr="$(grep -m1 '"message":"listening"' "$log" 2>/dev/null | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)"
        [ -n "$addr" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$log" >&2; st_die "[$name] scanvault serve exited during start (log above)"; }
        sleep 0.1
    done
    [ -n "$addr" ] || { tail -n 30 "$log" >&2; st_die "[$name] no 'listening' line within 60 s (log: $log)"; }
    local base="http://$addr"
    st_log "[$name] scanvault serve listening on $base (log: $log)"

    # Two admin keys: the main pass uses one; the pass that revokes keys uses the other, so
    # that revoking the key it learnt from GET /admin/api-keys cannot lock the main pass out.
    local key key2
    key="$(new_key "$name" "$log" "${db_env[@]}")" || exit 1
    key2="$(new_key "$name" "$log" "${db_env[@]}")" || exit 1

    # Seed: every corpus report, and two queued scan jobs (the worker is off).
    local f code seeded=0 rejected=0
    for f in "$SHARED"/corpus/trivy/*.json; do
        code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 60 -X POST "$base/scans" \
            -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary "@$f")" || code=000
        case "$code" in
            200|201) seeded=$((seeded + 1)) ;;
            4??) rejected=$((rejected + 1)); st_log "[$name] seed $(basename "$f"): $code" ;;
            *) st_die "[$name] seeding $(basename "$f") answered $code" ;;
        esac
    done
    [ $seeded -gt 0 ] || st_die "[$name] no seed report was accepted"
    for img in nginx:1.25 ghcr.io/example/app:2.0; do
        code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X POST "$base/scan-jobs" \
            -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
            --data "{\"image\":\"$img\"}")" || code=000
        [ "$code" = 202 ] || st_die "[$name] seeding scan job $img answered $code"
    done
    st_log "[$name] seeded $seeded reports ($rejected rejected) and 2 scan jobs"

    local rc=0 rc2=0
    # Pass 1: every operation but key revocation. Pass 2: creating and revoking keys.
    run_schemathesis "$name" main "$base" "$key" "$out" --exclude-name 'DELETE /admin/api-keys/{id}' || rc=$?
    run_schemathesis "$name" admin-keys "$base" "$key2" "$out" \
        --include-name 'POST /admin/api-keys' --include-name 'DELETE /admin/api-keys/{id}' || rc2=$?
    [ $rc -ne 0 ] || rc=$rc2
    if grep -q '"level":"ERROR"' "$log"; then
        st_log "[$name] the server logged errors:"
        grep '"level":"ERROR"' "$log" | head -n 20 >&2
        [ $rc -ne 0 ] || rc=1
    fi
    if grep -q 'panicked' "$log"; then
        st_log "[$name] the server panicked:"
        grep -m5 'panicked' "$log" >&2
        [ $rc -ne 0 ] || rc=1
    fi
    stop_server
    RUN_RC=$rc
}

# ---------------------------------------------------------------- backends
overall=0
RESULTS=()
IFS=',' read -r -a backend_list <<<"$BACKENDS"
for b in "${backend_list[@]}"; do
    case "$b" in
        sqlite)
            run_backend sqlite ""
            ;;
        postgres)
            if [ -z "${TEST_DATABASE_URL:-}" ]; then
                st_log "[postgres] TEST_DATABASE_URL not set: PostgreSQL run skipped"
                continue
            fi
            command -v psql >/dev/null 2>&1 || st_die "psql is needed for the PostgreSQL run (apt-get install postgresql-client)"
            db="sv_schemathesis_$(date +%s)_$$"
            psql "$TEST_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null </dev/null ||
                st_die "[postgres] CREATE DATABASE $db failed on TEST_DATABASE_URL"
            PG_DBS+=("$TEST_DATABASE_URL $db")
            base="${TEST_DATABASE_URL%%\?*}"; query=""
            [ "$base" != "$TEST_DATABASE_URL" ] && query="?${TEST_DATABASE_URL#*\?}"
            run_backend postgres "${base%/*}/$db$query"
            ;;
        *) st_die "unknown backend '$b' in SCHEMATHESIS_BACKENDS (sqlite, postgres)" ;;
    esac
    [ "$RUN_RC" -eq 0 ] || overall=1
    RESULTS+=("$b: $( [ "$RUN_RC" -eq 0 ] && echo passed || echo "FAILED (rc=$RUN_RC)" ); $(printf '%s' "$RUN_SUMMARY" | tr '\n' ';')")
done

for r in ${RESULTS[@]+"${RESULTS[@]}"}; do st_log "$r"; done
[ ${#RESULTS[@]} -gt 0 ] || st_die "no backend ran (SCHEMATHESIS_BACKENDS=$BACKENDS)"
if [ $overall -ne 0 ]; then
    st_log "FAILED: schemathesis found problems (details above; outputs in $OUT_DIR)"
    exit 1
fi
st_log "passed: zero server errors, zero schema violations"
