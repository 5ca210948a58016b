#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when missing, starts a
# throwaway ClickHouse, runs format, lint, tests and docs checks, and stops the server whatever
# happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/clickhouse.sh
source scripts/clickhouse-cluster.sh

clickhouse_install
# The dashboard's browser test (github-stats-server/tests/api/dashboard.rs) runs Debian's
# chromium headless.
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium from Debian's packages (dashboard browser test)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The generated-client test (github-stats-server/tests/api/openapi.rs) runs openapi-python-client
# from a virtualenv under target/, made once here (the test would make it too, less visibly).
echo "== python virtualenv of the generated-client test" >&2
scripts/openapi-client-venv.sh >/dev/null
trap 'clickhouse_stop; clickhouse_cluster_stop' EXIT
clickhouse_start test
clickhouse_cluster_start

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (CLICKHOUSE_URL=$CLICKHOUSE_URL)" >&2
cargo test --workspace
echo "== cargo doc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== chDB check (the ClickHouse store's SQL on current ClickHouse)" >&2
scripts/chdb_check.sh
