#!/usr/bin/env bash
# Starts a throwaway replicated ClickHouse cluster on free loopback ports: one ZooKeeper (Debian's
# `zookeeper` package, 3.8) and four clickhouse-server processes, two shards of two replicas
# (`internal_replication`), each with its own copy of the packaged configuration plus a
# `config.d` declaring the cluster, its `{shard}`/`{replica}` macros and ZooKeeper. What
# docs/operations.md ("Running on a cluster") describes, on one machine.
#
#   source scripts/clickhouse.sh scripts/clickhouse-replicated.sh
#   clickhouse_replicated_start   # exports CLICKHOUSE_REPLICATED_CLUSTER_NAME,
#                                 # CLICKHOUSE_REPLICATED_CLUSTER_URLS, CLICKHOUSE_REPLICATED_CTL
#   clickhouse_replicated_stop    # stops all five processes and removes their data
#
# CLICKHOUSE_REPLICATED_CLUSTER_URLS lists the nodes' HTTP URLs in `system.clusters` order:
# s1r1, s1r2, s2r1, s2r2 (shard 1 replica 1 first). CLICKHOUSE_REPLICATED_CTL is a script that
# stops and starts one process of the cluster, for tests of failures and by hand:
#
#   "$CLICKHOUSE_REPLICATED_CTL" kill s1r2       # SIGKILL, as a crash; waits until it is gone
#   "$CLICKHOUSE_REPLICATED_CTL" stop zookeeper  # SIGTERM; waits until it is gone
#   "$CLICKHOUSE_REPLICATED_CTL" start s1r2      # starts it again; waits until it answers
#   "$CLICKHOUSE_REPLICATED_CTL" status          # one line per process: up or down
#
# Processes: zookeeper, s1r1, s1r2, s2r1, s2r2. A restarted process keeps its data and ports.
# Needs `free_port` from scripts/clickhouse.sh, java and Debian's zookeeper package (ZooKeeper's
# jars under /usr/share/java).

CH_REPLICATED_NAME=gs_replicated
CH_REPLICATED_DIR=
CH_REPLICATED_NODES=(s1r1 s1r2 s2r1 s2r2)

# The java classpath of Debian's ZooKeeper: its jar (whose manifest names its dependencies) and
# the log4j binding, with the packaged log4j configuration.
zookeeper_classpath() {
    echo "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
}

clickhouse_replicated_start() {
    local dir zk_port node i shard replica
    dir=$(mktemp -d "${TMPDIR:-/tmp}/github-stats-ch-replicated.XXXXXX")
    CH_REPLICATED_DIR=$dir
    zk_port=$(free_port)
    declare -A http tcp inter
    for node in "${CH_REPLICATED_NODES[@]}"; do
        http[$node]=$(free_port)
        tcp[$node]=$(free_port)
        inter[$node]=$(free_port)
    done

    # ZooKeeper: one server, no admin HTTP server (it would take port 8080), short ticks so
    # that sessions are set up quickly.
    mkdir -p "$dir/zookeeper/data"
    cat >"$dir/zookeeper/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/zookeeper/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
maxSessionTimeout=60000
EOF
    cat >"$dir/zookeeper/run" <<EOF
#!/usr/bin/env bash
exec java -Xms32m -Xmx256m -Dzookeeper.root.logger=INFO,CONSOLE \\
    -cp "$(zookeeper_classpath)" \\
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zookeeper/zoo.cfg" \\
    >>"$dir/zookeeper/log" 2>&1
EOF
    echo "zk 127.0.0.1 $zk_port" >"$dir/zookeeper/ready"

    # The remote_servers entry every node shares.
    local shards=""
    for shard in 1 2; do
        shards+="<shard><internal_replication>true</internal_replication>"
        for replica in 1 2; do
            shards+="<replica><host>127.0.0.1</host><port>${tcp[s${shard}r${replica}]}</port></replica>"
        done
        shards+="</shard>"
    done
    for node in "${CH_REPLICATED_NODES[@]}"; do
        shard=${node:1:1}
        mkdir -p "$dir/$node/data" "$dir/$node/tmp" "$dir/$node/uf" "$dir/$node/fs" \
            "$dir/$node/etc/config.d"
        cp /etc/clickhouse-server/config.xml /etc/clickhouse-server/users.xml "$dir/$node/etc/"
        cat >"$dir/$node/etc/config.d/replicated.xml" <<EOF
<yandex>
    <remote_servers>
        <$CH_REPLICATED_NAME>$shards</$CH_REPLICATED_NAME>
    </remote_servers>
    <macros>
        <shard>0$shard</shard>
        <replica>$node</replica>
    </macros>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zk_port</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <interserver_http_host>127.0.0.1</interserver_http_host>
</yandex>
EOF
        cat >"$dir/$node/run" <<EOF
#!/usr/bin/env bash
exec clickhouse-server --config-file="$dir/$node/etc/config.xml" -- \\
    --path="$dir/$node/data/" --tmp_path="$dir/$node/tmp/" --user_files_path="$dir/$node/uf/" \\
    --format_schema_path="$dir/$node/fs/" --http_port=${http[$node]} --tcp_port=${tcp[$node]} \\
    --interserver_http_port=${inter[$node]} --listen_host=127.0.0.1 \\
    --logger.log="$dir/$node/log" --logger.errorlog="$dir/$node/err.log" \\
    >>"$dir/$node/stdout" 2>&1
EOF
        echo "http http://127.0.0.1:${http[$node]}" >"$dir/$node/ready"
    done
    chmod +x "$dir"/*/run
    write_replicated_ctl "$dir"

    "$dir/ctl" start zookeeper "${CH_REPLICATED_NODES[@]}" || return 1
    export CLICKHOUSE_REPLICATED_CLUSTER_NAME=$CH_REPLICATED_NAME
    CLICKHOUSE_REPLICATED_CLUSTER_URLS=
    for node in "${CH_REPLICATED_NODES[@]}"; do
        CLICKHOUSE_REPLICATED_CLUSTER_URLS+="${CLICKHOUSE_REPLICATED_CLUSTER_URLS:+,}http://127.0.0.1:${http[$node]}"
    done
    export CLICKHOUSE_REPLICATED_CLUSTER_URLS
    export CLICKHOUSE_REPLICATED_CTL=$dir/ctl
    echo "replicated clickhouse cluster $CLICKHOUSE_REPLICATED_CLUSTER_NAME (2 shards x 2" \
        "replicas, zookeeper 127.0.0.1:$zk_port) listening on $CLICKHOUSE_REPLICATED_CLUSTER_URLS;" \
        "control: $CLICKHOUSE_REPLICATED_CTL" >&2
}

# Writes DIR/ctl, the control script of the cluster in DIR (see the top of this file).
write_replicated_ctl() {
    local dir=$1
    cat >"$dir/ctl" <<'EOF'
#!/usr/bin/env bash
# Stops and starts the processes of one replicated test cluster (scripts/clickhouse-replicated.sh):
#   ctl kill|stop|start NAME...   ctl status
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
all=(zookeeper s1r1 s1r2 s2r1 s2r2)

running() {
    local pid
    pid=$(cat "$dir/$1/pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

answers() {
    local kind target reply
    read -r kind target port <"$dir/$1/ready"
    if [ "$kind" = zk ]; then
        # Bounded: a ZooKeeper still starting can take the connection and never answer.
        reply=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && echo ruok >&3 && cat <&3' \
            "$target" "$port" 2>/dev/null)
        [ "$reply" = imok ]
    else
        curl -fsS --max-time 2 "$target/ping" >/dev/null 2>&1
    fi
}

signal_and_wait() {
    local name=$1 signal=$2 pid
    running "$name" || return 0
    pid=$(cat "$dir/$name/pid")
    kill "-$signal" "$pid" 2>/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/$name/pid"; return 0; }
        sleep 0.1
    done
    echo "ctl: $name (pid $pid) still runs 30 s after SIG$signal; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
    rm -f "$dir/$name/pid"
}

start() {
    local name=$1
    if ! running "$name"; then
        # A server killed mid-insert may hold parts ZooKeeper never recorded (an insert its
        # client saw fail, and sends again); 18.16 then refuses to load the table when they are
        # a large share of it, as in these small test tables. The flag makes it set them aside
        # in detached/ and start, what docs/operations.md tells an operator to do.
        if [ "$name" != zookeeper ]; then
            mkdir -p "$dir/$name/data/flags"
            touch "$dir/$name/data/flags/force_restore_data"
        fi
        setsid "$dir/$name/run" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/$name/pid"
    fi
}

wait_ready() {
    local name=$1
    for _ in $(seq 1 600); do
        answers "$name" && return 0
        if ! running "$name"; then
            echo "ctl: $name exited while starting; its log:" >&2
            tail -20 "$dir/$name/log" "$dir/$name/err.log" "$dir/$name/stdout" 2>/dev/null >&2
            return 1
        fi
        sleep 0.1
    done
    echo "ctl: $name did not answer within 60 s; its log:" >&2
    tail -20 "$dir/$name/log" "$dir/$name/err.log" "$dir/$name/stdout" 2>/dev/null >&2
    return 1
}

command=${1:-status}
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${all[@]}")
for name in "${names[@]}"; do
    [ -f "$dir/$name/run" ] || { echo "ctl: no process $name (one of ${all[*]})" >&2; exit 2; }
done
case $command in
kill) for name in "${names[@]}"; do signal_and_wait "$name" KILL; done ;;
stop) for name in "${names[@]}"; do signal_and_wait "$name" TERM; done ;;
start)
    # ZooKeeper first: the servers connect to it at start.
    for name in "${names[@]}"; do
        [ "$name" = zookeeper ] && { start zookeeper; wait_ready zookeeper || exit 1; }
    done
    for name in "${names[@]}"; do [ "$name" = zookeeper ] || start "$name"; done
    for name in "${names[@]}"; do wait_ready "$name" || exit 1; done
    ;;
status)
    for name in "${names[@]}"; do
        if answers "$name"; then echo "$name up"; else echo "$name down"; fi
    done
    ;;
*) echo "usage: ctl kill|stop|start|status [NAME...]" >&2; exit 2 ;;
esac
EOF
    chmod +x "$dir/ctl"
}

clickhouse_replicated_stop() {
    if [ -n "${CH_REPLICATED_DIR:-}" ] && [ -x "$CH_REPLICATED_DIR/ctl" ]; then
        "$CH_REPLICATED_DIR/ctl" stop s1r1 s1r2 s2r1 s2r2 zookeeper
        rm -rf "$CH_REPLICATED_DIR"
    fi
    CH_REPLICATED_DIR=
}
