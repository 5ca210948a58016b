#!/usr/bin/env bash
# Starts a throwaway ClickHouse server on free loopback ports, for tests and benches.
#
#   source scripts/clickhouse.sh            # installs it when missing, starts it,
#   clickhouse_start                        # exports CLICKHOUSE_URL and CH_PID / CH_DIR
#   clickhouse_stop                         # stops it and removes its data
#
# Debian's clickhouse-server (18.16.1) is what CI has; the same commands work with current
# releases.

clickhouse_install() {
    if command -v clickhouse-server >/dev/null 2>&1; then
        return 0
    fi
    echo "installing clickhouse-server and clickhouse-client from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# clickhouse_start [NAME] [EXTRA_CONFIG_ARGS...]: sets CH_DIR, CH_PID, CH_HTTP_PORT, CH_TCP_PORT,
# and exports CLICKHOUSE_URL.
clickhouse_start() {
    local name=${1:-single}
    shift || true
    CH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/github-stats-ch-$name.XXXXXX")
    mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/uf" "$CH_DIR/fs"
    CH_HTTP_PORT=$(free_port)
    CH_TCP_PORT=$(free_port)
    local inter_port
    inter_port=$(free_port)
    clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
        --path="$CH_DIR/data/" --tmp_path="$CH_DIR/tmp/" --user_files_path="$CH_DIR/uf/" \
        --format_schema_path="$CH_DIR/fs/" --http_port="$CH_HTTP_PORT" --tcp_port="$CH_TCP_PORT" \
        --interserver_http_port="$inter_port" --listen_host=127.0.0.1 \
        --logger.log="$CH_DIR/log" --logger.errorlog="$CH_DIR/err.log" "$@" \
        >"$CH_DIR/stdout" 2>&1 &
    CH_PID=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" >/dev/null 2>&1; then
            export CLICKHOUSE_URL="http://127.0.0.1:$CH_HTTP_PORT"
            echo "clickhouse ($name) listening on $CLICKHOUSE_URL (pid $CH_PID)" >&2
            return 0
        fi
        sleep 0.2
    done
    echo "clickhouse ($name) did not start; its log:" >&2
    tail -20 "$CH_DIR/err.log" "$CH_DIR/stdout" >&2 || true
    return 1
}

clickhouse_stop() {
    if [ -n "${CH_PID:-}" ]; then
        kill "$CH_PID" 2>/dev/null || true
        wait "$CH_PID" 2>/dev/null || true
    fi
    if [ -n "${CH_DIR:-}" ]; then
        rm -rf "$CH_DIR"
    fi
}
