# shellcheck shell=bash
# scripts/lib/pg.sh - PostgreSQL helpers for scripts/test.sh (sourced, not executed).
#
#   pg_find_server_bins     sets PG_BIN (dir with initdb, pg_ctl, pg_isready, psql); when no
#                           initdb is found, apt-get installs the Debian `postgresql` package
#   pg_find_psql            sets PSQL (psql binary); apt-get installs `postgresql-client` if needed
#   pg_start_throwaway      initdb + start a private cluster on 127.0.0.1:<free port>, trust auth,
#                           socket + data in a mktemp dir; sets PG_TMP, PG_PORT, PG_URL
#   pg_stop_throwaway       stop it (immediate mode) and delete PG_TMP; idempotent, never fails
#   pg_check_url URL        `select 1`, then checks the role may create databases
#
# As root, the cluster runs as the OS user $SCANVAULT_PG_OS_USER (default `postgres`, created
# with useradd if missing): initdb refuses to run as root. The database superuser is always
# `postgres` (initdb -U postgres), whichever OS user runs the server.
# Inputs from the caller: LOG_DIR (logs), sv_log/sv_die (logging), APT_GUARD (global, removed
# by the caller's cleanup if an apt-get run is interrupted).

PG_BIN="${PG_BIN:-}"
PG_TMP=""
PG_PORT=""
PG_URL=""   # set by pg_start_throwaway, read by test.sh
PG_OS_USER=""
PSQL=""

# pg_apt_install PKG... : quiet, non-interactive apt-get install that starts no service.
pg_apt_install() {
    [ "$(id -u)" = 0 ] || sv_die "PostgreSQL is missing and installing it needs root (apt-get install $*); install it, or set TEST_DATABASE_URL"
    command -v apt-get >/dev/null 2>&1 || sv_die "PostgreSQL is missing and there is no apt-get; install PostgreSQL 15, or set TEST_DATABASE_URL"
    local log="$LOG_DIR/apt-postgresql.log" rc=0 try
    sv_log "apt-get install $* (log: $log)"
    # Keep maintainer scripts from starting the packaged cluster on :5432.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        APT_GUARD=/usr/sbin/policy-rc.d
    fi
    for try in 1 2 3; do
        rc=0
        {
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
                --no-install-recommends "$@"
        } >>"$log" 2>&1 </dev/null || rc=$?
        [ $rc -eq 0 ] && break
        [ $try -lt 3 ] || break
        sv_log "apt-get failed (attempt $try/3, rc=$rc); retrying in $((try * 10)) s"
        sleep $((try * 10))
    done
    if [ -n "${APT_GUARD:-}" ]; then rm -f "$APT_GUARD"; APT_GUARD=""; fi
    if [ $rc -ne 0 ]; then tail -n 30 "$log" >&2; sv_die "apt-get install $* failed (log above)"; fi
    # On systemd hosts the package enables its unit for boot; this script runs its own cluster.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable postgresql.service >/dev/null 2>&1 || true
    fi
}

# Newest /usr/lib/postgresql/<ver>/bin holding the given program, else nothing.
pg_debian_bindir() {
    local d best=""
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [ -x "$d/$1" ] && best="$d"
    done
    echo "$best"
}

pg_find_server_bins() {
    local p
    if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then return 0; fi
    if p="$(command -v initdb 2>/dev/null)"; then
        PG_BIN="$(dirname "$(readlink -f "$p")")"
    else
        PG_BIN="$(pg_debian_bindir initdb)"
    fi
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
        pg_apt_install postgresql
        PG_BIN="$(pg_debian_bindir initdb)"
        [ -n "$PG_BIN" ] || sv_die "installed postgresql but found no /usr/lib/postgresql/*/bin/initdb"
    fi
    local b
    for b in initdb pg_ctl postgres; do
        [ -x "$PG_BIN/$b" ] || sv_die "$PG_BIN/$b missing (set PG_BIN to a PostgreSQL bin dir)"
    done
    PSQL="$PG_BIN/psql"
    [ -x "$PSQL" ] || PSQL=""
}

pg_find_psql() {
    if [ -n "$PSQL" ] && [ -x "$PSQL" ]; then return 0; fi
    local d
    if PSQL="$(command -v psql 2>/dev/null)"; then return 0; fi
    d="$(pg_debian_bindir psql)"
    if [ -z "$d" ]; then pg_apt_install postgresql-client; d="$(pg_debian_bindir psql)"; fi
    [ -n "$d" ] || sv_die "no psql found after installing postgresql-client"
    PSQL="$d/psql"
}

pg_isready_bin() {
    if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/pg_isready" ]; then echo "$PG_BIN/pg_isready"; return; fi
    if command -v pg_isready >/dev/null 2>&1; then command -v pg_isready; return; fi
    local d; d="$(pg_debian_bindir pg_isready)"
    [ -n "$d" ] && echo "$d/pg_isready"
}

# pg_as CMD... : run CMD as the cluster's OS user, with cwd inside PG_TMP.
pg_as() {
    if [ -z "$PG_OS_USER" ]; then
        (cd "$PG_TMP" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$PG_TMP" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$PG_TMP" && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")")
    fi
}

pg_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' && return
    fi
    local p
    while :; do
        p=$(( 20000 + RANDOM % 30000 ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

pg_start_throwaway() {
    pg_find_server_bins
    local log="$LOG_DIR/postgres-setup.log"
    : >"$log"
    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/scanvault-pg.XXXXXX")"
    if [ "$(id -u)" = 0 ]; then
        PG_OS_USER="${SCANVAULT_PG_OS_USER:-postgres}"
        if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
            sv_log "creating system user $PG_OS_USER (initdb refuses to run as root)"
            if getent group "$PG_OS_USER" >/dev/null 2>&1; then
                useradd --system --gid "$PG_OS_USER" --no-create-home --home-dir /nonexistent \
                    --shell /usr/sbin/nologin "$PG_OS_USER"
            else
                useradd --system --user-group --no-create-home --home-dir /nonexistent \
                    --shell /usr/sbin/nologin "$PG_OS_USER"
            fi
        fi
        chown "$PG_OS_USER": "$PG_TMP"
        if ! pg_as test -w "$PG_TMP" && [ "$(dirname "$PG_TMP")" != /tmp ]; then
            # e.g. TMPDIR under /root: the cluster's user cannot reach it; use /tmp instead.
            rm -rf "$PG_TMP"
            PG_TMP="$(mktemp -d /tmp/scanvault-pg.XXXXXX)"
            chown "$PG_OS_USER": "$PG_TMP"
        fi
        pg_as test -w "$PG_TMP" ||
            sv_die "user $PG_OS_USER cannot write $PG_TMP (is it traversable by $PG_OS_USER?)"
    fi
    mkdir -p "$PG_TMP/sock" && { [ -z "$PG_OS_USER" ] || chown "$PG_OS_USER": "$PG_TMP/sock"; }

    pg_as "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 --locale=C \
        --no-sync --no-instructions >>"$log" 2>&1 </dev/null ||
        { cat "$log" >&2; sv_die "initdb failed (output above)"; }
    pg_as sh -c "cat >>'$PG_TMP/data/postgresql.conf'" <<EOF

# --- scanvault scripts/test.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_TMP/sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF
    local try
    for try in 1 2 3 4 5; do
        PG_PORT="$(pg_free_port)"
        echo "port = $PG_PORT" | pg_as sh -c "cat >>'$PG_TMP/data/postgresql.conf'"
        if pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/postgres.log" -w -t 60 start \
            >>"$log" 2>&1 </dev/null; then
            break
        fi
        if [ $try -lt 5 ] && grep -qE 'could not (bind|create listen)|already in use' "$PG_TMP/postgres.log" 2>/dev/null; then
            sv_log "port $PG_PORT taken, retrying"
            continue
        fi
        cat "$log" >&2; tail -n 30 "$PG_TMP/postgres.log" >&2 2>/dev/null || true
        sv_die "pg_ctl start failed (output above)"
    done

    local isready i
    isready="$(pg_isready_bin)"
    for i in $(seq 1 60); do
        if [ -n "$isready" ]; then
            "$isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2 && break
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null && break
        fi
        [ "$i" -lt 60 ] || { tail -n 30 "$PG_TMP/postgres.log" >&2; sv_die "PostgreSQL on 127.0.0.1:$PG_PORT not ready after 30 s"; }
        sleep 0.5
    done
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

pg_stop_throwaway() {
    [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ] || return 0
    local pid="" i
    if [ -f "$PG_TMP/data/postmaster.pid" ]; then
        pid="$(head -n 1 "$PG_TMP/data/postmaster.pid" 2>/dev/null || true)"
        pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w -t 20 stop >/dev/null 2>&1 </dev/null || true
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
    [ -f "$PG_TMP/postgres.log" ] && cp -f "$PG_TMP/postgres.log" "$LOG_DIR/postgres-server.log" 2>/dev/null
    rm -rf "$PG_TMP"
    PG_TMP=""
}

pg_check_url() {
    local url="$1" out
    pg_find_psql
    out="$(PGCONNECT_TIMEOUT=10 "$PSQL" "$url" -X -A -t -q -v ON_ERROR_STOP=1 \
        -c 'select 1' \
        -c 'select rolsuper or rolcreatedb from pg_roles where rolname = current_user' 2>&1 </dev/null)" ||
        sv_die "TEST_DATABASE_URL does not answer (psql: ${out//$'\n'/ })"
    case "$(printf '%s\n' "$out" | tail -n 1)" in
        t) ;;
        *) sv_die "the role in TEST_DATABASE_URL may not create databases (needs SUPERUSER or CREATEDB; the tests create one database per test)" ;;
    esac
}
