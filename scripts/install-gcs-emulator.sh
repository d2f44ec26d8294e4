#!/usr/bin/env bash
# Installs the pinned Cloud Storage emulator (gcp-storage-emulator, PyPI) into a project-local
# virtualenv, for the tests of Datastream files in Cloud Storage. Idempotent.
set -euo pipefail
VENV=${GCS_EMULATOR_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-gcs}
PIN="gcp-storage-emulator==2026.7.19"
if [ -x "$VENV/bin/gcp-storage-emulator" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("gcp-storage-emulator") == "2026.7.19" else 1)
PY
then
  exit 0
fi
echo "installing $PIN into $VENV..."
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "$PIN"
echo "gcp-storage-emulator installed in $VENV"
