# Sourced by run.sh and test.sh: a project virtualenv with everything installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${OUTCOMES_VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)-$1"
if [[ ! -f "$stamp" ]]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".[$1]"
  touch "$stamp"
fi
