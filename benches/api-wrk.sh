#!/usr/bin/env bash
# API throughput (benches/README.md, section API): 1M events in the memory store, the release
# server on loopback with --no-poll, wrk against the two metric endpoints.
#   benches/api-wrk.sh [EVENTS] [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
duration=${2:-10s}
connections=${3:-16}
port=${API_BENCH_PORT:-18080}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p github-stats-server --bin github-stats-server --example fill_memory_store
target=${CARGO_TARGET_DIR:-target}
data=$(mktemp -d /tmp/github-stats-api-bench.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" || true; fi
    rm -rf "$data"
}
trap cleanup EXIT
"$target/release/examples/fill_memory_store" "$data" "$events"
# LOG_LEVEL=warn: no access-log line per request (set API_BENCH_LOG_LEVEL=info to measure it).
DATA_DIR="$data" LOG_LEVEL=${API_BENCH_LOG_LEVEL:-warn} \
    "$target/release/github-stats-server" --no-poll --bind-address "127.0.0.1:$port" 2>"$data/server.log" &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
# A repository with many opened pull requests in the recorded hours.
repo=${API_BENCH_REPO:-KSP-CKAN/NetKAN}
for path in "/metrics/events?offset=60" "/metrics/pr-average/$repo"; do
    echo "== GET $path"
    curl -sf "http://127.0.0.1:$port$path"; echo
    wrk -t1 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port$path"
done
