#!/usr/bin/env bash
# Starts a throwaway two-shard ClickHouse cluster on free loopback ports: two clickhouse-server
# processes, each with its own directory holding a copy of the packaged configuration plus a
# `config.d/cluster.xml` that declares the cluster in `remote_servers` (shard 1 = server 1,
# shard 2 = server 2, one replica each). No ZooKeeper: the store applies its DDL on every node
# itself (docs/operations.md, "Running on a cluster").
#
#   source scripts/clickhouse.sh scripts/clickhouse-cluster.sh
#   clickhouse_cluster_start     # exports CLICKHOUSE_CLUSTER_NAME and CLICKHOUSE_CLUSTER_URLS
#   clickhouse_cluster_stop      # stops both servers and removes their data
#
# CLICKHOUSE_CLUSTER_URLS is the comma-separated list of the nodes' HTTP URLs, in the order of
# `system.clusters` (shard 1 first). Needs `free_port` from scripts/clickhouse.sh.

CH_CLUSTER_NAME=gs_two_shards
CH_CLUSTER_DIRS=()
CH_CLUSTER_PIDS=()

clickhouse_cluster_start() {
    local http=() tcp=() i dir
    for i in 0 1; do
        http[i]=$(free_port)
        tcp[i]=$(free_port)
    done
    for i in 0 1; do
        dir=$(mktemp -d "${TMPDIR:-/tmp}/github-stats-ch-shard$((i + 1)).XXXXXX")
        mkdir -p "$dir/data" "$dir/tmp" "$dir/uf" "$dir/fs" "$dir/etc/config.d"
        cp /etc/clickhouse-server/config.xml /etc/clickhouse-server/users.xml "$dir/etc/"
        cat >"$dir/etc/config.d/cluster.xml" <<EOF
<yandex>
    <remote_servers>
        <$CH_CLUSTER_NAME>
            <shard>
                <replica><host>127.0.0.1</host><port>${tcp[0]}</port></replica>
            </shard>
            <shard>
                <replica><host>127.0.0.1</host><port>${tcp[1]}</port></replica>
            </shard>
        </$CH_CLUSTER_NAME>
    </remote_servers>
</yandex>
EOF
        clickhouse-server --config-file="$dir/etc/config.xml" -- \
            --path="$dir/data/" --tmp_path="$dir/tmp/" --user_files_path="$dir/uf/" \
            --format_schema_path="$dir/fs/" --http_port="${http[i]}" --tcp_port="${tcp[i]}" \
            --interserver_http_port="$(free_port)" --listen_host=127.0.0.1 \
            --logger.log="$dir/log" --logger.errorlog="$dir/err.log" \
            >"$dir/stdout" 2>&1 &
        CH_CLUSTER_PIDS[i]=$!
        CH_CLUSTER_DIRS[i]=$dir
    done
    local ready
    for i in 0 1; do
        ready=
        for _ in $(seq 1 150); do
            if curl -fsS "http://127.0.0.1:${http[i]}/ping" >/dev/null 2>&1; then
                ready=1
                break
            fi
            sleep 0.2
        done
        if [ -z "$ready" ]; then
            echo "clickhouse cluster: shard $((i + 1)) did not start; its log:" >&2
            tail -20 "${CH_CLUSTER_DIRS[i]}/err.log" "${CH_CLUSTER_DIRS[i]}/stdout" >&2 || true
            return 1
        fi
    done
    export CLICKHOUSE_CLUSTER_NAME=$CH_CLUSTER_NAME
    export CLICKHOUSE_CLUSTER_URLS="http://127.0.0.1:${http[0]},http://127.0.0.1:${http[1]}"
    echo "clickhouse cluster $CLICKHOUSE_CLUSTER_NAME listening on $CLICKHOUSE_CLUSTER_URLS" \
        "(pids ${CH_CLUSTER_PIDS[*]})" >&2
}

clickhouse_cluster_stop() {
    local pid dir
    for pid in "${CH_CLUSTER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for dir in "${CH_CLUSTER_DIRS[@]}"; do
        rm -rf "$dir"
    done
    CH_CLUSTER_PIDS=()
    CH_CLUSTER_DIRS=()
}
