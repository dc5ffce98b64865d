# Sourced by scripts/demo and scripts/test: make .venv (once) and install the project into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "need Python >= 3.11" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.akashone-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # the build's own notices (setuptools' editable-install warnings) are shown only when
  # the install fails, with everything else it printed
  echo "installing akashone-es and its dependencies into .venv (once)..." >&2
  log="$(mktemp)"
  if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
         && .venv/bin/python -m pip install --quiet -e '.[dev]'; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "error: installing into .venv failed (the output above says why)" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
