# shellcheck shell=bash
# Sourced by the other scripts: make sure .venv exists and holds the given requirements files.
# Usage: . scripts/venv.sh && ensure_venv requirements.txt [more-requirements.txt ...]
# Then $PY is the venv's python and $BIN the folder of its commands (bin/, or Scripts/ on Windows).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

# venv_layout: set BIN and PY for the venv in $VENV (Windows venvs keep them in Scripts\).
venv_layout() {
  if [ -f "$VENV/Scripts/python.exe" ]; then
    BIN="$VENV/Scripts" PY="$VENV/Scripts/python.exe"
  else
    BIN="$VENV/bin" PY="$VENV/bin/python"
  fi
}

ensure_venv() {
  local stamp wanted file python
  local pip_args=()
  venv_layout
  if [ ! -x "$PY" ]; then
    echo "Creating $VENV" >&2
    # python3 on Linux and macOS; Windows' Git Bash may only have python or the py launcher.
    python=$(command -v python3 || command -v python || command -v py || true)
    if [ -z "$python" ] || ! "$python" -m venv "$VENV"; then
      echo "error: python3 -m venv failed; install Python 3.9+ with venv (Debian/Ubuntu: apt install python3-venv)" >&2
      return 1
    fi
    venv_layout
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

# ensure_pythons: one venv with requirements.txt per Python 3.9+ on this machine (python3.N on PATH and
# pyenv's versions), in .venv/pythons/VERSION/, for the test that runs the tutorial under each of them.
# Needs uv in .venv (tests/requirements.txt). Prints the versions it prepared.
ensure_pythons() {
  local candidate version found=" "
  for candidate in $(compgen -c python3. | grep -E '^python3\.[0-9]+$' | sort -u) \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3; do
    version=$("$candidate" -c 'import sys; assert sys.version_info >= (3, 9); print("%d.%d.%d" % sys.version_info[:3])' \
      2>/dev/null) || continue
    case "$found" in *" $version "*) continue ;; esac
    if ! cmp -s "$ROOT/requirements.txt" "$VENV/pythons/$version/requirements.txt"; then
      "$BIN/uv" venv --quiet --allow-existing --python "$candidate" "$VENV/pythons/$version" &&
        "$BIN/uv" pip install --quiet --python "$VENV/pythons/$version/bin/python" -r "$ROOT/requirements.txt" &&
        cp "$ROOT/requirements.txt" "$VENV/pythons/$version/requirements.txt" || return 1
    fi
    found="$found$version "
  done
  echo "Pythons for the version test:$found"
}
