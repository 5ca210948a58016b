#!/usr/bin/env bash
# The ClickHouse store's SQL on current ClickHouse (chDB) versus the server at CLICKHOUSE_URL
# (Debian's 18.16 in CI), on the same data: see scripts/chdb_check.py. The chdb-core wheel is
# installed once into a virtualenv under ~/.cache (CHDB_VENV overrides) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CLICKHOUSE_URL:?CLICKHOUSE_URL must point at a ClickHouse server (scripts/clickhouse.sh)}"
venv=${CHDB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/github-stats/chdb-venv}
if ! "$venv/bin/python" -c 'import chdb' >/dev/null 2>&1; then
    echo "installing chdb-core into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check chdb-core
fi
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
statements="$(cd "$target" && pwd)/chdb-check-statements.json"
cargo xtask chdb-statements "$statements"
"$venv/bin/python" scripts/chdb_check.py "$statements"
