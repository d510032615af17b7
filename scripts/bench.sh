#!/usr/bin/env bash
# Benchmark pub.py and sub.py against the plainest nats-py programs, on a local broker (TLS, .creds).
# Usage: bash scripts/bench.sh [--quick] [--json PATH] [--reps N]
#   --quick: smaller counts, under a minute. Prints a table; --json PATH also writes every figure.
set -euo pipefail

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"
ensure_venv requirements.txt scripts/requirements.txt
exec "$PY" "$ROOT/scripts/bench.py" "$@"
