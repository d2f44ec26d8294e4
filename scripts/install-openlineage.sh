#!/usr/bin/env bash
# Installs the pinned OpenLineage Python client (openlineage-python, PyPI) into a project-local
# virtualenv: the tests use it as a real emitter of run events. Idempotent.
set -euo pipefail
VENV=${OPENLINEAGE_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-openlineage}
VERSION=1.54.0
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("openlineage-python") == "$VERSION" else 1)
PY
then
  exit 0
fi
echo "installing openlineage-python==$VERSION into $VENV..."
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "openlineage-python==$VERSION"
echo "openlineage-python installed in $VENV"
