#!/usr/bin/env bash
# API throughput (benches/README.md, section API): 1M events in the memory store, the release
# server on loopback with --no-poll, wrk against the two metric endpoints, alternating with the
# same requests to a bare poem handler answering the same JSON shapes (examples/bare_handler.rs),
# API_BENCH_ROUNDS times (3), so that both are measured under the same load.
#   benches/api-wrk.sh [EVENTS] [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
duration=${2:-10s}
connections=${3:-16}
port=${API_BENCH_PORT:-18080}
bare_port=${API_BENCH_BARE_PORT:-18081}
rounds=${API_BENCH_ROUNDS:-3}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p github-stats-server --bin github-stats-server --example fill_memory_store \
    --example bare_handler
target=${CARGO_TARGET_DIR:-target}
data=$(mktemp -d /tmp/github-stats-api-bench.XXXXXX)
server_pid=
bare_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" || true; fi
    if [ -n "$bare_pid" ]; then kill -TERM "$bare_pid" 2>/dev/null || true; wait "$bare_pid" || true; fi
    rm -rf "$data"
}
trap cleanup EXIT
"$target/release/examples/fill_memory_store" "$data" "$events"
# LOG_LEVEL=warn: no access-log line per request (set API_BENCH_LOG_LEVEL=info to measure it).
DATA_DIR="$data" LOG_LEVEL=${API_BENCH_LOG_LEVEL:-warn} \
    "$target/release/github-stats-server" --no-poll --bind-address "127.0.0.1:$port" 2>"$data/server.log" &
server_pid=$!
"$target/release/examples/bare_handler" "127.0.0.1:$bare_port" &
bare_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bare_port/metrics/events" >/dev/null && break; sleep 0.1; done
# A repository with many opened pull requests in the recorded hours.
repo=${API_BENCH_REPO:-KSP-CKAN/NetKAN}
# /debug/total-events: the stack's own cost (a counter read, no coverage) for reference.
paths=("/metrics/events?offset=60" "/metrics/pr-average/$repo" "/debug/total-events")
for path in "${paths[@]}"; do
    echo "== GET $path"
    curl -sf "http://127.0.0.1:$port$path"; echo
    curl -sf "http://127.0.0.1:$bare_port$path"; echo
done
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$data/results
for round in $(seq "$rounds"); do
    for path in "${paths[@]}"; do
        for side in server bare; do
            if [ "$side" = server ]; then p=$port; else p=$bare_port; fi
            echo "== round $round, $side: GET $path"
            out=$(wrk -t1 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$p$path")
            echo "$out"
            rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
            p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
            echo "$path $side $round $rps $p99" >>"$results"
        done
    done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| endpoint | round | server requests/s | bare requests/s | server / bare | server p99 |"
echo "|---|---|---|---|---|---|"
for path in "${paths[@]}"; do
    for round in $(seq "$rounds"); do
        awk -v path="$path" -v round="$round" '
            $1 == path && $3 == round && $2 == "server" { s = $4; p99 = $5 }
            $1 == path && $3 == round && $2 == "bare" { b = $4 }
            END { printf "| `%s` | %s | %.0f | %.0f | %.2f | %s |\n", path, round, s, b, s / b, p99 }
        ' "$results"
    done
done
