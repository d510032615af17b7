#!/usr/bin/env bash
# The tutorial end to end on your machine: a local broker that authenticates like Scaleway MnQ
# (TLS, .creds file), sub.py waiting for two messages, pub.py sending the tutorial's two messages.
# Usage: bash scripts/demo.sh
# It installs what it needs into .venv, and stops everything it started, even on Ctrl+C.
set -euo pipefail

# shellcheck source=scripts/venv.sh
. "$(dirname "$0")/venv.sh"

if [ "$#" -gt 0 ]; then
  echo "usage: bash scripts/demo.sh" >&2
  exit 2
fi

work=$(mktemp -d)
pids=()
cleanup() {
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for_line FILE TEXT PID: wait until FILE has a line with TEXT, while PID still runs (20 s at most).
wait_for_line() {
  local tries=0
  until grep -q "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null || [ "$tries" -ge 200 ]; then
      echo "demo: error: no '$2' from $1:" >&2
      cat "$1" >&2
      return 1
    fi
    tries=$((tries + 1))
    sleep 0.1
  done
}

ensure_venv requirements.txt scripts/requirements.txt
cd "$ROOT"
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "Starting a local broker (TLS, .creds authentication) on 127.0.0.1:$port"
"$PY" scripts/local_broker.py --port "$port" --dir "$work/broker" >"$work/broker.log" 2>&1 &
pids+=("$!")
wait_for_line "$work/broker.log" "Stop it with Ctrl+C." "$!"
export NATS_URL="nats://127.0.0.1:$port"
export NATS_CREDS="$work/broker/tls/user.creds"
export NATS_CA="$work/broker/tls/ca.pem"

echo "Terminal 1: python3 sub.py --count 2"
"$PY" sub.py --count 2 >"$work/sub.log" 2>&1 &
sub_pid=$!
pids+=("$sub_pid")
wait_for_line "$work/sub.log" "Subscription OK" "$sub_pid"

echo "Terminal 2: python3 pub.py"
"$PY" pub.py
wait "$sub_pid"

echo "What terminal 1 printed:"
cat "$work/sub.log"
