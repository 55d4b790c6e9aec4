#!/usr/bin/env bash
# scripts/ui-test.sh - the dashboard in a real browser (a phase of scripts/test.sh).
#
#   bash scripts/ui-test.sh                       the browser test (tests/ui/dashboard.mjs)
#   bash scripts/ui-test.sh --screenshots docs/ui the same, writing a screenshot of each page
#
# 1. Chromium: Debian's `chromium` package (apt-get, as root or with sudo) unless CHROMIUM
#    names a browser or /usr/bin/chromium exists.
# 2. playwright-core (drives Chromium over CDP) and axe-core (accessibility rules), from the
#    npm registry at the versions of tests/ui/package-lock.json, into <target>/ui-tools.
#    Only the test uses Node.js; building and running ScanVault never does.
# 3. `scanvault serve` on embedded SQLite in a fresh directory, authentication on, with the
#    corpus (trivy, grype, cyclonedx) ingested by `scanvault ingest`, an admin key and a
#    reader key made by `scanvault apikey create`.
# 4. node tests/ui/dashboard.mjs: every page loads with no console errors and passes axe's
#    WCAG 2 A/AA rules, the trend chart draws, sign-in, search, image, suppress and counts
#    drop, sign-out, a reader cannot suppress, CSRF tokens are required.
#
# Env: SCANVAULT_BIN (default <target>/debug/scanvault), SCANVAULT_SHARED (holds corpus/),
#      CHROMIUM, CARGO_TARGET_DIR. Exit code: the browser test's (1 on any failed check).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"
ui_log() { printf 'ui-test.sh: %s\n' "$*" >&2; }
ui_die() { printf 'ui-test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

SCREENSHOTS=""
if [ "${1:-}" = "--screenshots" ]; then
    [ -n "${2:-}" ] || ui_die "--screenshots needs a directory"
    mkdir -p "$2"
    SCREENSHOTS="$(cd "$2" && pwd -P)"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
BIN="${SCANVAULT_BIN:-$TARGET_DIR/debug/scanvault}"
SHARED="${SCANVAULT_SHARED:-$REPO_ROOT/../shared}"
TOOLS="$TARGET_DIR/ui-tools"
[ -x "$BIN" ] || ui_die "no binary at $BIN (cargo build -p scanvault first, or set SCANVAULT_BIN)"
[ -d "$SHARED/corpus" ] || ui_die "no corpus at $SHARED/corpus (set SCANVAULT_SHARED)"

# ---------------------------------------------------------------- 1. Chromium
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    ui_log "installing Debian's chromium (apt-get)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    for try in 1 2 3; do
        if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium fonts-dejavu-core \
            >"$TARGET_DIR/ui-apt.log" 2>&1 </dev/null; then break; fi
        [ $try -lt 3 ] || { tail -n 20 "$TARGET_DIR/ui-apt.log" >&2; ui_die "apt-get install chromium failed"; }
        ui_log "apt-get failed (attempt $try/3); updating the package lists and retrying"
        $SUDO apt-get update -q >>"$TARGET_DIR/ui-apt.log" 2>&1 || true
        sleep $((try * 5))
    done
fi
[ -x "$CHROMIUM" ] || ui_die "no Chromium at $CHROMIUM"

# ---------------------------------------------------------------- 2. playwright-core, axe-core
command -v npm >/dev/null 2>&1 || ui_die "npm not found (the browser test drives Chromium with playwright-core from npm)"
mkdir -p "$TOOLS"
if ! cmp -s tests/ui/package-lock.json "$TOOLS/package-lock.json" || [ ! -d "$TOOLS/node_modules/playwright-core" ]; then
    cp tests/ui/package.json tests/ui/package-lock.json "$TOOLS/"
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >"$TOOLS/npm.log" 2>&1) ||
        { tail -n 20 "$TOOLS/npm.log" >&2; ui_die "npm ci failed (log: $TOOLS/npm.log)"; }
fi

# ---------------------------------------------------------------- 3. the service
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scanvault-ui.XXXXXX")"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
clean_env=(env -u DATABASE_URL -u DATABASE_URL_FILE -u SERVER_PORT -u SERVER_HOST -u AUTH_DISABLED
    -u BOOTSTRAP_ADMIN_KEY -u BOOTSTRAP_ADMIN_KEY_FILE DATA_DIR="$WORK")
"${clean_env[@]}" "$BIN" ingest "$SHARED/corpus/trivy" "$SHARED/corpus/grype" "$SHARED/corpus/cyclonedx" \
    >"$WORK/ingest.log" 2>&1 || { tail -n 20 "$WORK/ingest.log" >&2; ui_die "scanvault ingest of the corpus failed"; }
key() { "${clean_env[@]}" "$BIN" apikey create --role "$1" --name "$2" 2>>"$WORK/keys.log" </dev/null | awk 'END { print $NF }'; }
ADMIN_KEY="$(key admin "browser test admin")"
READER_KEY="$(key reader "browser test reader")"
case "$ADMIN_KEY$READER_KEY" in svk_*svk_*) ;; *) cat "$WORK/keys.log" >&2; ui_die "scanvault apikey create printed no key" ;; esac
"${clean_env[@]}" SERVER_HOST=127.0.0.1 SERVER_PORT=0 LOG_FORMAT=json WORKER_CONCURRENCY=0 \
    RATE_LIMIT_PER_SECOND=0 "$BIN" serve >"$WORK/serve.log" 2>&1 </dev/null &
SERVER=$!
addr=""
for _ in $(seq 300); do
    addr="$(grep -m1 '"message":"listening"' "$WORK/serve.log" 2>/dev/null | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)"
    [ -n "$addr" ] && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.2
done
[ -n "$addr" ] || { tail -n 30 "$WORK/serve.log" >&2; ui_die "scanvault serve did not start"; }
ui_log "scanvault serve on http://$addr, $(grep -c created "$WORK/ingest.log" || true) reports ingested"

# ---------------------------------------------------------------- 4. the browser test
rc=0
SCANVAULT_URL="http://$addr" ADMIN_KEY="$ADMIN_KEY" READER_KEY="$READER_KEY" CHROMIUM="$CHROMIUM" \
    UI_TOOLS="$TOOLS" SCREENSHOTS="$SCREENSHOTS" node tests/ui/dashboard.mjs || rc=$?
if grep -q '"level":"ERROR"' "$WORK/serve.log"; then
    grep '"level":"ERROR"' "$WORK/serve.log" | head -n 5 >&2
    ui_log "the service logged errors during the browser test"
    [ $rc -ne 0 ] || rc=1
fi
exit $rc
