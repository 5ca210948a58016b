#!/usr/bin/env bash
# The Python virtualenv of the generated-client test (github-stats-server/tests/api/openapi.rs):
# openapi-python-client and what the client it generates imports, pinned in
# scripts/openapi-client-requirements.txt, in target/py-venv. Kept across runs: rebuilt only
# when the requirements change. Prints the virtualenv's directory; scripts/test.sh runs it
# before the tests, and the test runs it itself when needed.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv="$target/py-venv"
requirements=scripts/openapi-client-requirements.txt
mkdir -p "$target"
# One installer at a time (the test and scripts/test.sh may race).
exec 9>"$target/py-venv.lock"
flock 9
if ! cmp -s "$requirements" "$venv/requirements.installed"; then
    echo "installing $requirements into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$venv/requirements.installed"
fi
cd "$venv" && pwd
