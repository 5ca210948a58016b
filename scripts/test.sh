#!/usr/bin/env bash
# The one test command (README, .ci/run): checks its prerequisites, installs the system packages
# the tests need when missing, starts a throwaway ClickHouse, a two-shard cluster and a
# replicated cluster (ZooKeeper and two shards of two replicas), runs format, lint, tests, docs
# and the chDB check, and stops the servers whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/clickhouse.sh
source scripts/clickhouse-cluster.sh
source scripts/clickhouse-replicated.sh

# Debian packages the run needs: ClickHouse for the store tests, ZooKeeper (with its Java) for
# the replicated cluster's, chromium for the dashboard's browser test
# (github-stats-server/tests/api/dashboard.rs), curl for the servers' readiness, python3 with
# venv for the chDB check (scripts/chdb_check.sh).
apt_packages=()
# Everything else that cannot be installed here, with how to get it.
missing=()

# Takes well under a second: nothing is built or downloaded before every check has run.
preflight() {
    if ! command -v cargo >/dev/null 2>&1; then
        missing+=("cargo: install Rust (https://rustup.rs)")
    else
        cargo fmt --version >/dev/null 2>&1 ||
            missing+=("rustfmt: rustup component add rustfmt")
        cargo clippy --version >/dev/null 2>&1 ||
            missing+=("clippy: rustup component add clippy")
    fi
    command -v clickhouse-server >/dev/null 2>&1 ||
        apt_packages+=(clickhouse-server clickhouse-client)
    if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
        apt_packages+=(zookeeper)
    fi
    if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
        [ -z "${CHROMIUM:-}" ]; then
        apt_packages+=(chromium)
    fi
    command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
    if ! command -v python3 >/dev/null 2>&1; then
        apt_packages+=(python3 python3-venv)
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_packages+=(python3-venv)
    fi
    if ((${#apt_packages[@]})); then
        if [ "$(id -u)" -ne 0 ]; then
            missing+=("Debian packages ${apt_packages[*]}: run this script as root to install them, or install them yourself")
        elif ! command -v apt-get >/dev/null 2>&1; then
            missing+=("packages ${apt_packages[*]}: no apt-get here to install them; install them yourself")
        fi
    fi
    if ((${#missing[@]})); then
        echo "scripts/test.sh cannot run; missing:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        exit 2
    fi
}

preflight
if ((${#apt_packages[@]})); then
    echo "installing ${apt_packages[*]} from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
# The generated-client test (github-stats-server/tests/api/openapi.rs) runs openapi-python-client
# from a virtualenv under target/, made once here (the test would make it too, less visibly).
echo "== python virtualenv of the generated-client test" >&2
scripts/openapi-client-venv.sh >/dev/null
trap 'clickhouse_stop; clickhouse_cluster_stop; clickhouse_replicated_stop' EXIT
clickhouse_start test
clickhouse_cluster_start
clickhouse_replicated_start

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== the test kit stays out of the binaries; core builds and tests without ClickHouse" >&2
# The conformance suite, the fake GitHub and GH Archive and the ClickHouse store's test hooks
# are behind core's `testsuite` feature, which only dev-dependencies enable: a binary's own
# build must not compile any of it.
for binary in github-stats-server github-stats-backfill; do
    if cargo tree -q -p "$binary" -e normal,build,features -i github-stats-core | grep -q testsuite; then
        echo "$binary's build enables github-stats-core's testsuite feature" >&2
        exit 1
    fi
done
cargo build -q -p github-stats-core --no-default-features --all-targets
cargo test -q -p github-stats-core --no-default-features --lib
echo "== cargo test (CLICKHOUSE_URL=$CLICKHOUSE_URL)" >&2
# Every test binary runs even when one fails, so one run shows every failure.
cargo test --workspace --no-fail-fast
echo "== cargo doc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== chDB check (the ClickHouse store's SQL on current ClickHouse)" >&2
scripts/chdb_check.sh
