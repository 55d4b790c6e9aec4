#!/usr/bin/env bash
# scripts/test.sh - THE test command of ScanVault (CI runs it through .ci/run).
#
#   bash scripts/test.sh [ARGS...]      ARGS go to the test runner, e.g. -E 'test(parse)'
#
# What it does, in order (each phase is timed on stderr):
#   1. finds the shared test data: $SCANVAULT_SHARED, else <repo>/../shared; it must hold
#      corpus/ and e2e-kit/ (hard failure otherwise, never a skip)
#   2. installs what is missing (idempotent, quiet; logs in <target>/scanvault-test/):
#      the e2e kit (docker-registry, skopeo, trivy 0.59.1: e2e-kit/install.sh), cargo-nextest
#      (cargo install --locked; falls back to `cargo test` if that fails), PostgreSQL (apt)
#   3. PostgreSQL: uses TEST_DATABASE_URL if set (checked with psql), else starts a throwaway
#      cluster on 127.0.0.1:<free port> (trust auth, data in a mktemp dir, run as the `postgres`
#      OS user when root) and exports TEST_DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres.
#      The role can create databases; tests create their own database per test from it.
#   4. e2e: `e2e-kit/fixture.sh up` (Trivy DB, 2 images, registry on 127.0.0.1, pushes) and
#      exports its E2E_* variables, plus SCANVAULT_CORPUS and SCANVAULT_E2E_KIT
#   5. cargo build of all test targets, `cargo nextest run --workspace --all-targets
#      --no-fail-fast ARGS`, then `cargo test --workspace --doc` (nextest cannot run doctests)
#   6. scripts/schemathesis.sh against the debug binary, SQLite and PostgreSQL (a few minutes at most)
#   7. scripts/ui-test.sh: the dashboard in headless Chromium (Debian's chromium via apt,
#      playwright-core and axe-core from npm, test-time only) against the debug binary
#   8. scripts/lint-deploy.sh: the deployment files checked offline (hadolint on the Dockerfile,
#      docker-compose.yml against the Compose schema, the Kubernetes overlays rendered and checked
#      by kubernetes-validate, checkov and scripts/check-k8s.py, the alert rules by promtool)
# Everything started is stopped and deleted on exit, also on failure and Ctrl-C.
# Exit code: the test runner's (the build's if the build fails, the doctests' if only they fail,
# schemathesis.sh's if only it fails, ui-test.sh's if only it fails, lint-deploy.sh's if only it fails).
#
# Env:
#   SCANVAULT_SHARED=DIR     shared dir (default <repo>/../shared)
#   TEST_DATABASE_URL=URL    use this PostgreSQL instead of a throwaway cluster
#   SCANVAULT_SKIP_PG=1      local quick runs only: no PostgreSQL; exported so tests skip PG tests
#   SCANVAULT_SKIP_E2E=1     local quick runs only: no e2e fixture; exported so tests skip e2e tests
#                            (both are refused when CI is set)
#   SCANVAULT_DOCTESTS=0     do not run doctests
#   SCANVAULT_SCHEMATHESIS=0 local quick runs only: do not run scripts/schemathesis.sh (ignored when CI is set)
#   SCANVAULT_TEST_CMD=CMD   debugging aid: run `bash -c CMD` (ARGS as $1...) instead of step 5,
#                            with every backend up and exported, e.g.
#                            SCANVAULT_TEST_CMD='env | grep E2E_; psql "$TEST_DATABASE_URL" -c "select 1"'
#                            (refused when CI is set)
#   SCANVAULT_PG_OS_USER     OS user running the throwaway cluster as root (default postgres)
#   CI=true                  CI mode: no skips, no SCANVAULT_TEST_CMD, CARGO_TERM_COLOR=never
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

# ---------------------------------------------------------------- logging, timing
sv_log() { printf 'test.sh: %s\n' "$*" >&2; }
sv_die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

now() { echo "${EPOCHREALTIME/[.,]/}"; }   # microseconds
T_START="$(now)"
PHASE=""; PHASE_T0=""
TIMINGS=()
secs() { local us=$1; printf '%d.%01d' $((us / 1000000)) $(((us % 1000000) / 100000)); }
phase() {   # phase NAME: end the current phase (if any), start NAME ("" = none)
    local t; t="$(now)"
    if [ -n "$PHASE" ]; then
        TIMINGS+=("$PHASE $(secs $((t - PHASE_T0)))s")
        sv_log "phase $PHASE: $(secs $((t - PHASE_T0))) s"
    fi
    PHASE="$1"; PHASE_T0="$t"
    if [ -n "$PHASE" ]; then sv_log "phase $PHASE ..."; fi
}

is_true() {   # is_true VALUE: 1/true/yes -> 0; ""/0/false/no -> 1; anything else -> error
    case "${1,,}" in
        1|true|yes|on) return 0 ;;
        ""|0|false|no|off) return 1 ;;
        *) sv_die "unexpected boolean value '$1' (use 1 or 0)" ;;
    esac
}

# ---------------------------------------------------------------- options
IN_CI=0
case "${CI:-}" in ""|0|false|False|FALSE) ;; *) IN_CI=1 ;; esac
SKIP_PG=0;  if is_true "${SCANVAULT_SKIP_PG:-}";  then SKIP_PG=1;  fi
SKIP_E2E=0; if is_true "${SCANVAULT_SKIP_E2E:-}"; then SKIP_E2E=1; fi
DOCTESTS=1; if [ -n "${SCANVAULT_DOCTESTS:-}" ] && ! is_true "$SCANVAULT_DOCTESTS"; then DOCTESTS=0; fi
TEST_CMD="${SCANVAULT_TEST_CMD:-}"

if [ $IN_CI = 1 ]; then
    [ $SKIP_PG = 0 ]  || sv_die "SCANVAULT_SKIP_PG is for local quick runs only; CI (CI=$CI) must run the PostgreSQL tests"
    [ $SKIP_E2E = 0 ] || sv_die "SCANVAULT_SKIP_E2E is for local quick runs only; CI (CI=$CI) must run the e2e tests"
    [ -z "$TEST_CMD" ] || sv_die "SCANVAULT_TEST_CMD is a debugging aid; CI (CI=$CI) must run the real test suite"
    export CARGO_TERM_COLOR=never
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
# Tests read these: set = "backend deliberately absent, skip"; unset = "backend must be there".
if [ $SKIP_PG = 1 ];  then export SCANVAULT_SKIP_PG=1;  else unset SCANVAULT_SKIP_PG;  fi
if [ $SKIP_E2E = 1 ]; then export SCANVAULT_SKIP_E2E=1; else unset SCANVAULT_SKIP_E2E; fi

CARGO_HOME_BIN="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1 && [ -x "$CARGO_HOME_BIN/cargo" ]; then PATH="$CARGO_HOME_BIN:$PATH"; fi
if [ -z "$TEST_CMD" ]; then   # fail before starting anything
    command -v cargo >/dev/null 2>&1 || sv_die "cargo not found (install Rust with rustup; looked in PATH and $CARGO_HOME_BIN)"
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
LOG_DIR="$TARGET_DIR/scanvault-test"
mkdir -p "$LOG_DIR"

# ---------------------------------------------------------------- cleanup (one trap for all)
APT_GUARD=""
E2E_WORK=""
CLEANED=0
# shellcheck source=scripts/lib/pg.sh
. "$REPO_ROOT/scripts/lib/pg.sh"

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    [ $CLEANED = 1 ] && return
    CLEANED=1
    [ -n "$PHASE" ] && phase ""
    if [ -n "$E2E_WORK" ]; then
        bash "$SHARED/e2e-kit/fixture.sh" down "$E2E_WORK" >>"$LOG_DIR/e2e-fixture.log" 2>&1
        rm -rf "$E2E_WORK"
    fi
    pg_stop_throwaway
    [ -n "$APT_GUARD" ] && rm -f "$APT_GUARD"
    local total; total="$(secs $(( $(now) - T_START )))"
    local joined="" t
    for t in ${TIMINGS[@]+"${TIMINGS[@]}"}; do joined+="$t, "; done
    sv_log "timings: ${joined}total ${total}s (logs: $LOG_DIR)"
    sv_log "exit $rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- 1. shared data
phase locate
SHARED="${SCANVAULT_SHARED:-$REPO_ROOT/../shared}"
[ -d "$SHARED" ] || sv_die "shared test data not found at $SHARED (set SCANVAULT_SHARED, or put it next to the repo as ../shared)"
SHARED="$(cd "$SHARED" && pwd -P)"
[ -d "$SHARED/corpus" ] || sv_die "$SHARED/corpus/ missing: the corpus tests need it (set SCANVAULT_SHARED to the dir holding corpus/ and e2e-kit/)"
for f in install.sh fixture.sh; do
    [ -f "$SHARED/e2e-kit/$f" ] || sv_die "$SHARED/e2e-kit/$f missing: the e2e tests need the e2e kit (set SCANVAULT_SHARED to the dir holding corpus/ and e2e-kit/)"
done
export SCANVAULT_CORPUS="$SHARED/corpus"
export SCANVAULT_E2E_KIT="$SHARED/e2e-kit"
sv_log "shared: $SHARED ($([ $IN_CI = 1 ] && echo "CI mode" || echo "local mode"))"

# ---------------------------------------------------------------- 2. install
phase install-e2e-kit
if [ $SKIP_E2E = 0 ]; then
    install_log="$LOG_DIR/e2e-install.log"
    : >"$install_log"
    rc=0
    for try in 1 2 3; do
        rc=0
        bash "$SHARED/e2e-kit/install.sh" >"$LOG_DIR/e2e-install.out" 2>>"$install_log" </dev/null || rc=$?
        [ $rc -eq 0 ] && break
        # Typical transient causes: apt/dpkg lock held by another apt run, a concurrent install.sh,
        # a network hiccup on apt or PyPI.
        [ $try -lt 3 ] || break
        sv_log "e2e-kit/install.sh failed (attempt $try/3, rc=$rc); retrying in $((try * 10)) s"
        sleep $((try * 10))
    done
    if [ $rc -ne 0 ]; then tail -n 30 "$install_log" >&2; sv_die "e2e-kit/install.sh failed 3 times (log above: $install_log)"; fi
    trivy_line="$(grep '^TRIVY=' "$LOG_DIR/e2e-install.out" | tail -n 1 || true)"
    [ -n "$trivy_line" ] && export TRIVY="${trivy_line#TRIVY=}"
    sv_log "e2e kit ready (trivy: ${TRIVY:-?})"
fi

RUNNER=nextest
if [ -z "$TEST_CMD" ]; then
    phase install-nextest
    if ! cargo nextest --version >/dev/null 2>&1; then
        sv_log "installing cargo-nextest (cargo install --locked; a few minutes; log: $LOG_DIR/cargo-nextest-install.log)"
        if ! cargo install cargo-nextest --locked --quiet >"$LOG_DIR/cargo-nextest-install.log" 2>&1 </dev/null ||
           ! cargo nextest --version >/dev/null 2>&1; then
            tail -n 15 "$LOG_DIR/cargo-nextest-install.log" >&2
            sv_log "WARNING: cargo-nextest install failed; falling back to plain cargo test"
            RUNNER=cargo-test
        fi
    fi
fi

if [ $SKIP_PG = 0 ] && [ -z "${TEST_DATABASE_URL:-}" ]; then
    phase install-postgres
    pg_find_server_bins
    sv_log "postgres binaries: $PG_BIN"
fi

# ---------------------------------------------------------------- 3. PostgreSQL
phase postgres
if [ $SKIP_PG = 1 ]; then
    sv_log "SCANVAULT_SKIP_PG=1: no PostgreSQL (local quick run; PostgreSQL tests skip)"
    unset TEST_DATABASE_URL
elif [ -n "${TEST_DATABASE_URL:-}" ]; then
    pg_check_url "$TEST_DATABASE_URL"
    sv_log "using TEST_DATABASE_URL=$(printf '%s' "$TEST_DATABASE_URL" | sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#')"
    export TEST_DATABASE_URL
else
    pg_start_throwaway
    export TEST_DATABASE_URL="$PG_URL"
    sv_log "throwaway PostgreSQL $("$PG_BIN/postgres" --version | sed -E 's/^[^0-9]*([0-9.]+).*/\1/') at $TEST_DATABASE_URL (OS user: ${PG_OS_USER:-$(id -un)}, dir: $PG_TMP)"
fi

# ---------------------------------------------------------------- 4. e2e fixture
phase e2e
if [ $SKIP_E2E = 1 ]; then
    sv_log "SCANVAULT_SKIP_E2E=1: no e2e fixture (local quick run; e2e tests skip)"
    for v in $(compgen -e | grep '^E2E_' || true); do unset "$v"; done
else
    # Our own work dir, so cleanup can tear down even a half-finished `up`.
    E2E_WORK="$(mktemp -d "${TMPDIR:-/tmp}/scanvault-e2e.XXXXXX")"
    fixture_exports=""
    if ! fixture_exports="$(E2E_KIT_WORK="$E2E_WORK" bash "$SHARED/e2e-kit/fixture.sh" up 2>"$LOG_DIR/e2e-fixture.log" </dev/null)"; then
        cat "$LOG_DIR/e2e-fixture.log" >&2
        sv_die "e2e-kit/fixture.sh up failed (output above)"
    fi
    eval "$fixture_exports"
    [ -n "${E2E_REGISTRY:-}" ] || sv_die "fixture.sh up did not export E2E_REGISTRY"
    sv_log "e2e fixture: registry $E2E_REGISTRY, images: $(compgen -e | grep '^E2E_IMAGE_' | tr '\n' ' ' || true)"
fi

# ---------------------------------------------------------------- 5. build + tests
if [ -n "$TEST_CMD" ]; then
    phase test-cmd
    sv_log "SCANVAULT_TEST_CMD set: running it instead of the test suite"
    rc=0
    bash -c "$TEST_CMD" scanvault-test-cmd "$@" || rc=$?
    exit $rc
fi

phase build
build_rc=0
cargo test --workspace --all-targets --no-run || build_rc=$?
if [ $build_rc -ne 0 ]; then sv_log "build failed (rc=$build_rc)"; exit $build_rc; fi

phase tests
test_rc=0
if [ $RUNNER = nextest ]; then
    cargo nextest run --workspace --all-targets --no-fail-fast "$@" || test_rc=$?
else
    cargo test --workspace --all-targets --no-fail-fast "$@" || test_rc=$?
fi
sv_log "tests ($RUNNER): rc=$test_rc"

doc_rc=0
if [ $DOCTESTS = 1 ]; then
    phase doctests
    cargo test --workspace --doc --no-fail-fast >"$LOG_DIR/doctests.log" 2>&1 || doc_rc=$?
    if [ $doc_rc -ne 0 ] && grep -q 'no library targets found' "$LOG_DIR/doctests.log"; then doc_rc=0; fi
    if [ $doc_rc -ne 0 ]; then cat "$LOG_DIR/doctests.log" >&2; fi
    sv_log "doctests: rc=$doc_rc ($(grep -cE '^test .* \.\.\. ok$' "$LOG_DIR/doctests.log" || true) passed; log: $LOG_DIR/doctests.log)"
fi

schema_rc=0
if [ "${SCANVAULT_SCHEMATHESIS:-1}" != 0 ] || [ $IN_CI = 1 ]; then
    phase schemathesis
    SCANVAULT_BIN="$TARGET_DIR/debug/scanvault" SCANVAULT_SHARED="$SHARED" SCHEMATHESIS_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
        SCHEMATHESIS_TIMEOUT="${SCHEMATHESIS_TIMEOUT:-120}" bash "$REPO_ROOT/scripts/schemathesis.sh" </dev/null || schema_rc=$?
    sv_log "schemathesis: rc=$schema_rc (outputs: $TARGET_DIR/schemathesis/)"
fi

ui_rc=0
phase ui
SCANVAULT_BIN="$TARGET_DIR/debug/scanvault" SCANVAULT_SHARED="$SHARED" \
    bash "$REPO_ROOT/scripts/ui-test.sh" </dev/null || ui_rc=$?
sv_log "dashboard in Chromium: rc=$ui_rc"

phase lint-deploy
deploy_rc=0
bash "$REPO_ROOT/scripts/lint-deploy.sh" </dev/null || deploy_rc=$?
sv_log "lint-deploy: rc=$deploy_rc"

[ $test_rc -ne 0 ] && exit $test_rc
[ $doc_rc -ne 0 ] && exit $doc_rc
[ $schema_rc -ne 0 ] && exit $schema_rc
[ $ui_rc -ne 0 ] && exit $ui_rc
exit $deploy_rc
