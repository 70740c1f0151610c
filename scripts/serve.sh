#!/usr/bin/env bash
# Install (into .venv) and run one Skill Share node on the embedded database.
# Any SKILLSHARE_* variable in the environment is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[embedded]'
exec .venv/bin/skillshare serve "$@"
