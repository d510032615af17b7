#!/usr/bin/env bash
# The whole test suite: lint (ruff format and check, shellcheck) and pytest against real nats-server brokers.
# Usage: bash scripts/test.sh [PYTEST_ARGS...]   (e.g. -k closed_pipe: only the tests whose names hold it)
# It creates or reuses .venv and installs requirements.txt and tests/requirements.txt into it; then a venv
# per Python 3.9+ found here (.venv/pythons/), and the environment `uv run pub.py` uses (PEP 723 metadata).
set -euo pipefail

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"
ensure_venv requirements.txt scripts/requirements.txt tests/requirements.txt
cd "$ROOT"
ensure_pythons
"$BIN/uv" sync --quiet --script pub.py
"$BIN/uv" sync --quiet --script sub.py

echo "ruff"
"$BIN/ruff" format --check .
"$BIN/ruff" check .
echo "shellcheck"
"$BIN/shellcheck" scripts/*.sh .ci/run
echo "pytest"
"$PY" -m pytest -c tests/pytest.ini "$@"
