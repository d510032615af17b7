# shellcheck shell=bash
# Sourced by the other scripts: make sure .venv exists and holds the given requirements files.
# Usage: . scripts/venv.sh && ensure_venv requirements.txt [more-requirements.txt ...]

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

ensure_venv() {
  local stamp wanted file
  local pip_args=()
  if [ ! -x "$PY" ]; then
    echo "Creating $VENV" >&2
    if ! python3 -m venv "$VENV"; then
      echo "error: python3 -m venv failed; install Python 3.9+ with venv (Debian/Ubuntu: apt install python3-venv)" >&2
      return 1
    fi
  fi
  # Install again only when one of these requirements files changed since they were last installed.
  stamp="$VENV/.installed-$(echo "$*" | tr -c '[:alnum:]' '_')"
  wanted=$(cd "$ROOT" && cat "$@" | cksum)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing $* into $VENV" >&2
    for file in "$@"; do pip_args+=(-r "$file"); done
    (cd "$ROOT" && "$PY" -m pip install --quiet --disable-pip-version-check "${pip_args[@]}") || return 1
    echo "$wanted" > "$stamp"
  fi
}
