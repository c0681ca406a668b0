#!/usr/bin/env bash
# Install FogVault and its test tools into .venv (created if missing), then run the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k restore` or `scripts/test.sh --extended`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check fogvault tests scripts
exec .venv/bin/python -m pytest -q "$@"
