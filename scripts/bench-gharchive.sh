#!/usr/bin/env bash
# GH Archive import throughput (benches/README.md, "GH Archive import"): HOURS hour files of
# GH Archive-style events (built from testdata/ by scripts/make-bench-input.py, gzip level 6 like
# GH Archive's, never committed), served by a local HTTP server (python3 -m http.server), and
#
#   1. `zcat` of the same files to /dev/null: the floor, decompression alone;
#   2. `github-stats-backfill --gharchive` of the range with --jobs 1 into the memory store: the
#      import against zcat, as a ratio;
#   3. the same with --jobs 2: hours per minute while catching up.
#
#   scripts/bench-gharchive.sh [HOURS] [SIZE_MB_PER_HOUR]
#
# Each measurement runs RUNS times (default 3); the best is reported, with the files warm in the
# page cache. BACKFILL_BIN skips the build and uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS=${1:-6}
SIZE_MB=${2:-100}
RUNS=${RUNS:-3}
BENCH_DIR=${TMPDIR:-/tmp}/github-stats-bench/gharchive-${HOURS}x${SIZE_MB}
FIRST_DAY=2024-01-01

mkdir -p "$BENCH_DIR/files"
for h in $(seq 0 $((HOURS - 1))); do
    file="$BENCH_DIR/files/$FIRST_DAY-$h.json.gz"
    if [ ! -f "$file" ]; then
        # Disjoint ids per hour: each file starts 1000 copies after the previous one.
        python3 scripts/make-bench-input.py --out "$file" --size-mb "$SIZE_MB" --gzip \
            --gzip-level 6 --first-copy $((h * 1000))
    fi
done
if [ -z "${BACKFILL_BIN:-}" ]; then
    cargo build --release -q -p github-stats-backfill
fi
BIN=${BACKFILL_BIN:-${CARGO_TARGET_DIR:-target}/release/github-stats-backfill}
compressed=$(cat "$BENCH_DIR"/files/*.json.gz | wc -c)
plain=$(zcat "$BENCH_DIR"/files/*.json.gz | wc -c)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$BENCH_DIR/files" \
    >"$BENCH_DIR/http.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

now() { date +%s.%N; }
best() { sort -g | head -1; }
range="${FIRST_DAY}T00..$(date -u -d "$FIRST_DAY + $HOURS hours" +%Y-%m-%dT%H)"

echo "$HOURS hours, $((compressed / 1000000)) MB gzip, $((plain / 1000000)) MB of JSON, served on 127.0.0.1:$port" >&2

zcat_time=$(for _ in $(seq "$RUNS"); do
    t0=$(now)
    zcat "$BENCH_DIR"/files/*.json.gz >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
done | best)
printf 'zcat to /dev/null: %.2f s, %.0f MB/s of JSON\n' "$zcat_time" "$(echo "$plain / 1000000 / $zcat_time" | bc -l)"

import() {
    local jobs=$1
    for _ in $(seq "$RUNS"); do
        data=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
        t0=$(now)
        "$BIN" --backend memory --data-dir "$data" --gharchive "$range" \
            --gharchive-url "http://127.0.0.1:$port" --jobs "$jobs" \
            >"$BENCH_DIR/summary-$jobs.txt" 2>"$BENCH_DIR/stderr-$jobs.txt"
        t1=$(now)
        rm -rf "$data"
        echo "$t1 - $t0" | bc -l
    done | best
}

one=$(import 1)
printf 'backfill --gharchive --jobs 1: %.2f s, %.0f MB/s of JSON, %.2fx zcat'"'"'s time, %.1f hours/min\n' \
    "$one" "$(echo "$plain / 1000000 / $one" | bc -l)" "$(echo "$one / $zcat_time" | bc -l)" \
    "$(echo "$HOURS * 60 / $one" | bc -l)"
two=$(import 2)
printf 'backfill --gharchive --jobs 2: %.2f s, %.0f MB/s of JSON, %.2fx zcat'"'"'s time, %.1f hours/min\n' \
    "$two" "$(echo "$plain / 1000000 / $two" | bc -l)" "$(echo "$two / $zcat_time" | bc -l)" \
    "$(echo "$HOURS * 60 / $two" | bc -l)"
cat "$BENCH_DIR/summary-2.txt"
