# Sourced by bench/run.sh and bench/ab.sh: start `scanvault serve` as every benchmark runs it.
# No auth, no rate limit, no scan worker: the benchmarks measure analytics and ingest.
# Uses BIN, PORT and the caller's environment (DATABASE_URL or DATA_DIR); sets SERVER to the
# server's pid, then waits (up to 20 s) until /health answers. Set the caller's EXIT trap
# (`kill $SERVER`) before calling, so an interrupted wait does not leave the server running.
SERVER=${SERVER:-}
start_server() {   # $1: the server's log file
  AUTH_DISABLED=true RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 \
    SERVER_PORT=$PORT WORKER_CONCURRENCY=0 RUST_LOG=warn "$BIN" serve > "$1" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
}
