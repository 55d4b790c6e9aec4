#!/usr/bin/env bash
# scripts/fuzz.sh - run a cargo-fuzz target of ScanVault for a while (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET]      defaults: 60 parse_report
#   bash scripts/fuzz.sh 300 parse_report
#   bash scripts/fuzz.sh 60 image_identity
#
# What it does:
#   1. picks a toolchain: $SCANVAULT_FUZZ_TOOLCHAIN, else nightly if installed, else tries
#      `rustup toolchain install nightly --profile minimal`, else stable with RUSTC_BOOTSTRAP=1
#      (cargo-fuzz needs -Z flags; stable accepts them with RUSTC_BOOTSTRAP=1)
#   2. installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`)
#   3. seeds fuzz/corpus/<TARGET>-seeds/ afresh: for parse_report every *.json under
#      $SCANVAULT_SHARED/corpus (default <repo>/../shared; a hard failure if missing) plus
#      hand-made edge cases (empty, null, BOM-only, deep nesting, NUL bytes, invalid UTF-8, ...);
#      for image_identity a few reference strings. Shared files larger than max_len go to
#      fuzz/corpus/<TARGET>-large/ instead, and are checked once each, whole (step 4)
#   4. parse_report: runs the target once over each of those large files (-runs=0), so the
#      whole corpus is checked against the target's properties even when it is not mutated
#   5. runs `cargo fuzz run` for SECONDS with the working corpus fuzz/corpus/<TARGET>/ (kept
#      between runs; new inputs go there) and the seeds, a dictionary for parse_report, a
#      per-input timeout (a hang is a failure) and -max_len (see SCANVAULT_FUZZ_MAX_LEN)
#   6. prints a summary (executions, coverage, corpus size) and exits non-zero if a crash,
#      timeout or out-of-memory input was found; the input is kept in fuzz/artifacts/<TARGET>/
#
# Env:
#   SCANVAULT_SHARED=DIR            shared dir holding corpus/ (default <repo>/../shared)
#   SCANVAULT_FUZZ_TOOLCHAIN=NAME   rustup toolchain for cargo fuzz (default: see step 1)
#   SCANVAULT_FUZZ_SANITIZER=NAME   address (default, cargo-fuzz's) | none (faster, no ASan) | ...
#   SCANVAULT_FUZZ_JOBS=N           parallel fuzzing processes (libFuzzer -fork=N; default 1)
#   SCANVAULT_FUZZ_MAX_LEN=BYTES    largest input libFuzzer mutates/generates (default 262144).
#                                   A cap, on purpose: with 4194304 (the biggest corpus file is
#                                   3.8 MB) the corpus fills with multi-MB mutants and the rate
#                                   drops ~3.5x (about 260 vs 920 exec/s on this machine), while
#                                   files that big only reach code the smaller ones reach too;
#                                   the 4 files over 256 KiB are still checked whole (step 4).
#   SCANVAULT_FUZZ_TIMEOUT=SECONDS  one input taking longer is a hang (default 10)
#   SCANVAULT_FUZZ_DEBUG_ASSERTIONS=0  build without debug assertions / overflow checks (default on)
#   SCANVAULT_FUZZ_COVERAGE=1       afterwards, build a coverage binary, replay the corpus and
#                                   print llvm-cov's report for crates/scanvault-core (needs the
#                                   llvm-tools rustup component; output in fuzz/coverage/)
#   SCANVAULT_FUZZ_ARGS="..."       extra libFuzzer flags, e.g. "-only_ascii=1"
# Reproduce a crash:  cargo +nightly fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...
# Exit code: 0 no crash; 1 crash/timeout/OOM found (or the run failed); 2 usage or setup error.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
FUZZ_DIR="$REPO_ROOT/fuzz"

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }
die() { printf 'fuzz.sh: ERROR: %s\n' "$*" >&2; exit 2; }

SECONDS_ARG="${1:-60}"
TARGET="${2:-parse_report}"
[ $# -le 2 ] || die "usage: scripts/fuzz.sh [SECONDS] [TARGET]"
[[ "$SECONDS_ARG" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, got '$SECONDS_ARG'"
case "$TARGET" in
    parse_report|image_identity) ;;
    *) die "unknown target '$TARGET' (parse_report, image_identity)" ;;
esac

SANITIZER="${SCANVAULT_FUZZ_SANITIZER:-address}"
JOBS="${SCANVAULT_FUZZ_JOBS:-1}"
MAX_LEN="${SCANVAULT_FUZZ_MAX_LEN:-262144}"
TIMEOUT="${SCANVAULT_FUZZ_TIMEOUT:-10}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "SCANVAULT_FUZZ_JOBS must be a positive integer"
[[ "$MAX_LEN" =~ ^[1-9][0-9]*$ ]] || die "SCANVAULT_FUZZ_MAX_LEN must be a positive integer"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "SCANVAULT_FUZZ_TIMEOUT must be a positive integer"
SHARED="${SCANVAULT_SHARED:-$REPO_ROOT/../shared}"
if [ "$TARGET" = parse_report ] && [ ! -d "$SHARED/corpus" ]; then   # fail before installing anything
    die "shared corpus not found: '$SHARED/corpus' (set SCANVAULT_SHARED to the dir holding corpus/)"
fi
BUILD_FLAGS=(--release --sanitizer "$SANITIZER")
case "${SCANVAULT_FUZZ_DEBUG_ASSERTIONS:-1}" in
    0|false|no|off) ;;
    *) BUILD_FLAGS+=(--debug-assertions) ;;
esac

# ---------------------------------------------------------------- toolchain, cargo-fuzz
# Root's non-login shells (CI, sudo) may not have ~/.cargo/bin on PATH.
CARGO_BIN="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) [ -d "$CARGO_BIN" ] && PATH="$CARGO_BIN:$PATH" ;; esac
export PATH
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup; looked in PATH and $CARGO_BIN)"

TOOLCHAIN="${SCANVAULT_FUZZ_TOOLCHAIN:-}"
if [ -z "$TOOLCHAIN" ]; then
    if rustc +nightly --version >/dev/null 2>&1; then
        TOOLCHAIN=nightly
    elif command -v rustup >/dev/null 2>&1 \
        && timeout 300 rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
        && rustc +nightly --version >/dev/null 2>&1; then
        TOOLCHAIN=nightly
    else
        TOOLCHAIN=stable
    fi
fi
if ! rustc +"$TOOLCHAIN" --version >/dev/null 2>&1; then
    die "toolchain '$TOOLCHAIN' is not installed (rustup toolchain list)"
fi
if [[ "$TOOLCHAIN" != nightly* ]]; then
    # cargo-fuzz passes -Zsanitizer=… and -Cpasses=sancov-module; stable takes -Z flags
    # only with RUSTC_BOOTSTRAP=1 (the sanitizer runtimes ship with stable's rust-std too).
    export RUSTC_BOOTSTRAP=1
    log "toolchain '$TOOLCHAIN' is not a nightly: setting RUSTC_BOOTSTRAP=1"
fi
log "toolchain: $(rustc +"$TOOLCHAIN" --version)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install cargo-fuzz --locked) ..."
    cargo install cargo-fuzz --locked >&2 || die "could not install cargo-fuzz"
fi
log "$(cargo fuzz --version)"

# ---------------------------------------------------------------- corpus
CORPUS="$FUZZ_DIR/corpus/$TARGET"          # kept between runs; libFuzzer writes here
SEEDS="$FUZZ_DIR/corpus/$TARGET-seeds"     # rebuilt every run; only read
LARGE="$FUZZ_DIR/corpus/$TARGET-large"     # rebuilt every run; shared files > max_len
ARTIFACTS="$FUZZ_DIR/artifacts/$TARGET"
mkdir -p "$CORPUS" "$ARTIFACTS"
rm -rf "$SEEDS" "$LARGE"
mkdir -p "$SEEDS" "$LARGE"

seed() {   # seed NAME: stdin -> $SEEDS/NAME
    cat >"$SEEDS/$1"
}

seed_parse_report() {
    local shared="$SHARED" n=0 large=0 f rel dest
    while IFS= read -r -d '' f; do
        rel="${f#"$shared/corpus/"}"
        dest="$SEEDS"
        if [ "$(stat -c %s "$f")" -gt "$MAX_LEN" ]; then
            # libFuzzer would truncate it to max_len, leaving only a JSON syntax error.
            dest="$LARGE"
            large=$((large + 1))
        fi
        # A copy with a writable mode: the shared files are read-only.
        install -m 0644 "$f" "$dest/shared__${rel//\//__}"
        n=$((n + 1))
    done < <(find "$shared/corpus" -type f -name '*.json' -print0 | sort -z)
    [ "$n" -gt 0 ] || die "no *.json files under '$shared/corpus'"
    log "seeded $((n - large)) files from $shared/corpus; $large larger than max_len $MAX_LEN are checked once, not mutated"

    # Hand-made edge cases.
    printf '' | seed empty
    printf ' \r\n\t' | seed whitespace
    printf 'null' | seed null
    printf '\xEF\xBB\xBF' | seed bom-only
    printf '\xEF\xBB\xBFnull' | seed bom-null
    printf '\xEF\xBB\xBF\xEF\xBB\xBF[]' | seed bom-twice
    printf '[]' | seed empty-array
    printf '{}' | seed empty-object
    printf '42' | seed scalar
    printf '\x00' | seed nul
    printf '{"SchemaVersion":2,\x00}' | seed nul-in-object
    printf '{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1\\u0000","PkgName":"p"}]}]}' \
        | seed nul-escaped-in-id
    printf '{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1\x00","PkgName":"p"}]}]}' \
        | seed nul-raw-in-id
    printf '\xff' | seed invalid-utf8
    printf '{"A":"\xff"}' | seed invalid-utf8-in-string
    printf '{"ArtifactName":"\xe2\x82"}' | seed truncated-multibyte
    printf '{"ArtifactName":"\\ud800"}' | seed lone-surrogate
    printf '%*s' 100000 '' | tr ' ' '[' | seed deep-array
    { printf '{"SchemaVersion":2,"X":'; printf '%*s' 100000 '' | tr ' ' '['; } | seed deep-in-object
    { for _ in $(seq 2000); do printf '{"a":'; done; printf '1'; } | seed deep-objects
    { printf '{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","CVSS":'
      for _ in $(seq 1000); do printf '{"x":'; done; } | seed deep-in-cvss
    cat <<'EOF' | seed v2-dupes-cvss
{"SchemaVersion":2,"CreatedAt":"2024-01-02T03:04:05Z","ArtifactName":"docker.io/library/app:1@sha256:ab","ArtifactType":"container_image",
 "Metadata":{"OS":{"Family":"alpine","Name":"3.19"},"ImageID":"sha256:cd","RepoTags":["app:1"],"RepoDigests":["app@sha256:ab"]},
 "Results":[
  {"Target":"a","Class":"os-pkgs","Type":"alpine","Vulnerabilities":[
   {"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1","Severity":"LOW","SeveritySource":"nvd",
    "CVSS":{"nvd":{"V3Score":9.8,"V3Vector":"CVSS:3.1/AV:N"},"redhat":{"V2Score":1e308,"V40Score":-0.0}}}]},
  {"Target":"b","Vulnerabilities":[
   {"VulnerabilityID":" CVE-1 ","PkgName":" p ","InstalledVersion":"1 ","Severity":"critical","FixedVersion":"2","Status":"fixed",
    "CVSS":{"ghsa":{"V3Score":10.0000001,"V40Score":10}},"PublishedDate":"0001-01-01T00:00:00Z","References":["x"]},
   {"VulnerabilityID":"CVE-2","PkgName":"p","InstalledVersion":"","Severity":"NEGLIGIBLE","FixedVersion":"  ",
    "PkgIdentifier":{"PURL":"pkg:apk/p@1"},"LastModifiedDate":"2024-13-45"}]}]}
EOF
    cat <<'EOF' | seed legacy-target
[{"Target":"knqyf263/vuln-image:1.2.3 (alpine 3.7.1)","Vulnerabilities":[
  {"VulnerabilityID":"CVE-3","PkgName":"musl","InstalledVersion":"1.1","Severity":"HIGH"}]},
 {"Target":"é:ü/ß@€ (x)","Vulnerabilities":null}]
EOF
    printf '[{"Target":" (","Vulnerabilities":[]},{"Target":"€ ()"}]' | seed legacy-odd-target
    printf '{"SchemaVersion":2,"Metadata":{"RepoTags":["a:1"],"RepoDigests":["a@sha256:1\\u0000"]}}' | seed nul-in-repo-digest
    printf '{"SchemaVersion":2,"ArtifactName":"app:1@","ArtifactType":"container_image"}' | seed empty-digest
    printf '{"matches":[],"descriptor":{}}' | seed grype-marker
    printf '{"ClusterName":"k","Resources":[]}' | seed k8s-marker
    printf '{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"%0600d"}]}]}' 1 | seed long-id
}

seed_image_identity() {
    # The target decodes bytes with `arbitrary`; plain strings are a fine start.
    local i=0 s
    for s in 'docker.io/library/nginx:1.25@sha256:abc' 'localhost:5000/app:1.0' \
             'index.docker.io/library/redis' 'ghcr.io/org/app@' 'a:' ':@' \
             'é:ü/ß@€' 'library/x€:ü' 'registry-1.docker.io/library/' '日本/語:タグ@sha256:ß'; do
        printf '%s' "$s" | seed "ref-$i"
        i=$((i + 1))
    done
}

"seed_$TARGET"

# ---------------------------------------------------------------- run
# cargo fuzz adds -artifact_prefix=fuzz/artifacts/<TARGET>/ itself.
COMMON_ARGS=(-timeout="$TIMEOUT" -rss_limit_mb=4096)
FUZZ_ARGS=(
    "${COMMON_ARGS[@]}"
    -max_total_time="$SECONDS_ARG"
    -max_len="$MAX_LEN"
    -print_final_stats=1
)
if [ "$TARGET" = parse_report ]; then FUZZ_ARGS+=(-dict="$FUZZ_DIR/parse_report.dict"); fi
if [ "$JOBS" -gt 1 ]; then FUZZ_ARGS+=(-fork="$JOBS"); fi
# shellcheck disable=SC2206  # word splitting intended
if [ -n "${SCANVAULT_FUZZ_ARGS:-}" ]; then FUZZ_ARGS+=(${SCANVAULT_FUZZ_ARGS}); fi

LOG="$FUZZ_DIR/artifacts/$TARGET.log"
before="$(find "$ARTIFACTS" -maxdepth 1 -type f | sort)"
log "building and running '$TARGET' for ${SECONDS_ARG}s (sanitizer $SANITIZER, jobs $JOBS, max_len $MAX_LEN, timeout ${TIMEOUT}s); log: $LOG"

cd "$FUZZ_DIR"
t0="$(date +%s)"
large_rc=0
large_n="$(find "$LARGE" -type f | wc -l)"
set +e
if [ "$large_n" -gt 0 ]; then
    biggest="$(find "$LARGE" -type f -printf '%s\n' | sort -n | tail -n 1)"
    log "checking the $large_n corpus file(s) larger than max_len once each, whole ..."
    cargo +"$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$TARGET" "$LARGE" -- \
        "${COMMON_ARGS[@]}" -runs=0 -max_len="$biggest" >"$LOG.large" 2>&1
    large_rc=$?
    grep -E 'INITED|ERROR|panicked|Error' "$LOG.large" >&2
fi
if [ "$large_rc" -eq 0 ]; then
    cargo +"$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$TARGET" "$CORPUS" "$SEEDS" -- "${FUZZ_ARGS[@]}" 2>&1 | tee "$LOG"
    rc="${PIPESTATUS[0]}"
else
    log "the large-file check failed (exit $large_rc; log $LOG.large): not fuzzing"
    cp "$LOG.large" "$LOG"
    rc="$large_rc"
fi
set -e
t1="$(date +%s)"

after="$(find "$ARTIFACTS" -maxdepth 1 -type f | sort)"
new="$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')"

# ---------------------------------------------------------------- summary
last_status="$(grep -E '^#[0-9]+' "$LOG" | tail -n 1 || true)"
execs="$(grep -E '^stat::number_of_executed_units:' "$LOG" | awk '{s += $2} END {if (NR) print s}' || true)"
[ -n "$execs" ] || execs="$(printf '%s\n' "$last_status" | sed -nE 's/^#([0-9]+).*/\1/p')"
done_line="$(grep -E '^Done [0-9]+ runs' "$LOG" | tail -n 1 || true)"
echo
echo "=== fuzz.sh summary: $TARGET ==="
echo "wall time:     $((t1 - t0)) s (including the build), fuzzing ${SECONDS_ARG} s requested"
echo "executions:    ${execs:-unknown}${done_line:+ ($done_line)}"
echo "last status:   ${last_status:-none}"
echo "corpus:        $(find "$CORPUS" -type f | wc -l) files in $CORPUS"
if [ -n "$new" ]; then
    echo "RESULT: FAILURE - new artifact(s) (crash, timeout, OOM or leak input):"
    printf '%s\n' "$new" | sed 's/^/  /'
    echo "reproduce: (cd fuzz && cargo +$TOOLCHAIN fuzz run ${BUILD_FLAGS[*]} $TARGET <artifact>)"
    echo "minimize:  (cd fuzz && cargo +$TOOLCHAIN fuzz tmin ${BUILD_FLAGS[*]} $TARGET <artifact>)"
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "RESULT: FAILURE - cargo fuzz exited with $rc and left no artifact (build error? see $LOG)"
    exit 1
fi
echo "RESULT: OK - no crash, hang or OOM in ${SECONDS_ARG} s"

# ---------------------------------------------------------------- optional coverage
case "${SCANVAULT_FUZZ_COVERAGE:-0}" in
    0|false|no|off|"") exit 0 ;;
esac
sysroot="$(rustc +"$TOOLCHAIN" --print sysroot)"
host="$(rustc +"$TOOLCHAIN" -vV | sed -n 's/^host: //p')"
llvm_cov="$sysroot/lib/rustlib/$host/bin/llvm-cov"
[ -x "$llvm_cov" ] || { log "coverage: llvm-cov missing (rustup component add llvm-tools --toolchain $TOOLCHAIN)"; exit 0; }
log "coverage: replaying the working corpus and the seeds ..."
mkdir -p "$FUZZ_DIR/coverage"
# The seeds are not copied into $CORPUS by libFuzzer: replay both.
cargo +"$TOOLCHAIN" fuzz coverage "$TARGET" "$CORPUS" "$SEEDS" -- -max_len="$MAX_LEN" >"$FUZZ_DIR/coverage/$TARGET.log" 2>&1 \
    || { log "coverage: cargo fuzz coverage failed (see fuzz/coverage/$TARGET.log)"; exit 0; }
bin="$FUZZ_DIR/target/$host/coverage/$host/release/$TARGET"
echo "=== line/region coverage of crates/scanvault-core (replay of corpus + seeds) ==="
"$llvm_cov" report "$bin" -instr-profile="$FUZZ_DIR/coverage/$TARGET/coverage.profdata" \
    --ignore-filename-regex='/(\.cargo|\.rustup|rustc)/|/fuzz/' | tee "$FUZZ_DIR/coverage/$TARGET-report.txt"
