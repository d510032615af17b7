#!/usr/bin/env bash
# Run a local NATS broker that authenticates like Scaleway MnQ: .creds files (operator/JWT mode), TLS.
# Usage: bash scripts/local-broker.sh [--port PORT] [--dir DIR] [--no-tls] [--cluster N]
#   PORT: default 4222, or env LOCAL_BROKER_PORT. DIR: keys and certificates, default .local-broker.
# Once JetStream answers, it prints the NATS_URL, NATS_CREDS and NATS_CA to export in the terminals running
# sub.py and pub.py; nats-server's log goes to a file it names. Ctrl+C stops it.
set -euo pipefail

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"
ensure_venv requirements.txt scripts/requirements.txt
export LOCAL_BROKER_DIR="${LOCAL_BROKER_DIR:-$ROOT/.local-broker}"
exec "$PY" "$ROOT/scripts/local_broker.py" "$@"
