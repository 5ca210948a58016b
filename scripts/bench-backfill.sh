#!/usr/bin/env bash
# Backfill throughput, side by side on one GH Archive-style file (benches/README.md, "Backfill"):
#
#   1. ClickHouse's own `INSERT INTO t FORMAT JSONEachRow` of the file over HTTP, into a table of
#      `id`, `type`, `created_at` Strings with input_format_skip_unknown_fields=1 (the baseline);
#   2. github-stats-backfill into the memory store (a fresh DATA_DIR);
#   3. github-stats-backfill into ClickHouse (a fresh database), when the build has the backend.
#
#   CLICKHOUSE_URL=http://127.0.0.1:18123 scripts/bench-backfill.sh [INPUT] [SIZE_MB]
#
# INPUT defaults to $TMPDIR/github-stats-bench/2015-01-01-0.json, built by
# scripts/make-bench-input.py when missing (never commit it). Each measurement runs RUNS times
# (default 3); the best is reported, with the file warm in the page cache for all of them.
# BACKFILL_BIN skips the build and uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${TMPDIR:-/tmp}/github-stats-bench
INPUT=${1:-$BENCH_DIR/2015-01-01-0.json}
SIZE_MB=${2:-520}
RUNS=${RUNS:-3}
CH=${CLICKHOUSE_URL:-http://127.0.0.1:18123}
DB=bench_backfill_$$

mkdir -p "$BENCH_DIR"
if [ ! -f "$INPUT" ]; then
    python3 scripts/make-bench-input.py --out "$INPUT" --size-mb "$SIZE_MB"
fi
if [ -z "${BACKFILL_BIN:-}" ]; then
    cargo build --release -q -p github-stats-backfill
fi
BIN=${BACKFILL_BIN:-${CARGO_TARGET_DIR:-target}/release/github-stats-backfill}
bytes=$(stat -c %s "$INPUT")
cat "$INPUT" >/dev/null # warm the page cache

ch() { curl -fsS "$CH/" --data-binary "$1"; }
now() { date +%s.%N; }
best() { sort -g | head -1; }

echo "input: $INPUT, $((bytes / 1000000)) MB" >&2

ch "CREATE DATABASE IF NOT EXISTS $DB"
trap 'ch "DROP DATABASE IF EXISTS $DB" || true' EXIT
baseline=$(for _ in $(seq "$RUNS"); do
    ch "DROP TABLE IF EXISTS $DB.t"
    ch "CREATE TABLE $DB.t (id String, type String, created_at String) ENGINE = MergeTree ORDER BY tuple()"
    t0=$(now)
    curl -fsS "$CH/?query=INSERT%20INTO%20$DB.t%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1" \
        --data-binary "@$INPUT" -H 'Content-Type: application/octet-stream'
    t1=$(now)
    echo "$t1 - $t0" | bc -l
done | best)
rows=$(ch "SELECT count() FROM $DB.t")
printf 'clickhouse JSONEachRow: %.2f s, %.0f MB/s, %s rows\n' "$baseline" "$(echo "$bytes / 1000000 / $baseline" | bc -l)" "$rows"

memory=$(for _ in $(seq "$RUNS"); do
    data=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
    t0=$(now)
    "$BIN" --backend memory --data-dir "$data" "$INPUT" >"$BENCH_DIR/memory-summary.txt" 2>/dev/null
    t1=$(now)
    rm -rf "$data"
    echo "$t1 - $t0" | bc -l
done | best)
printf 'backfill into memory: %.2f s, %.0f MB/s\n' "$memory" "$(echo "$bytes / 1000000 / $memory" | bc -l)"
cat "$BENCH_DIR/memory-summary.txt"

chdb=
for i in $(seq "$RUNS"); do
    t0=$(now)
    if ! CLICKHOUSE_URL=$CH CLICKHOUSE_DATABASE=${DB}_store_$i "$BIN" --backend clickhouse "$INPUT" \
        >"$BENCH_DIR/clickhouse-summary.txt" 2>"$BENCH_DIR/clickhouse-stderr.txt"; then
        echo "backfill into clickhouse failed:" >&2
        tail -3 "$BENCH_DIR/clickhouse-stderr.txt" >&2
        ch "DROP DATABASE IF EXISTS ${DB}_store_$i" || true
        chdb=
        break
    fi
    t1=$(now)
    ch "DROP DATABASE IF EXISTS ${DB}_store_$i"
    run=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$chdb" ] || [ "$(echo "$run < $chdb" | bc -l)" = 1 ]; then chdb=$run; fi
done
if [ -n "$chdb" ]; then
    printf 'backfill into clickhouse: %.2f s, %.0f MB/s, %.2fx as fast as the JSONEachRow baseline\n' \
        "$chdb" "$(echo "$bytes / 1000000 / $chdb" | bc -l)" "$(echo "$baseline / $chdb" | bc -l)"
    cat "$BENCH_DIR/clickhouse-summary.txt"
fi
