#!/usr/bin/env bash
# The whole test suite: lint (ruff, shellcheck) and pytest against real nats-server brokers.
# Usage: bash scripts/test.sh [PYTEST_ARGS...]
# It creates or reuses .venv and installs requirements.txt and tests/requirements.txt into it.
set -euo pipefail

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"
ensure_venv requirements.txt scripts/requirements.txt tests/requirements.txt
cd "$ROOT"

echo "ruff"
"$VENV/bin/ruff" check .
echo "shellcheck"
"$VENV/bin/shellcheck" scripts/*.sh .ci/run
echo "pytest"
"$PY" -m pytest -c tests/pytest.ini "$@"
