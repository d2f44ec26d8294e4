#!/usr/bin/env bash
# Installs the pinned BigQuery emulator (bqemulator, PyPI) into a project-local virtualenv.
# Offline-safe: the DuckDB 'spatial' extension that bqemulator loads at startup comes from a PyPI
# wheel (duckdb-extension-spatial) instead of a download, and duckdb is pinned to a version that
# has such a wheel. numpy is an undeclared runtime dependency of bqemulator.
# Idempotent: does nothing when the venv already has the pinned version.
set -euo pipefail
VENV=${BQEMU_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-bqemu}
PIN="bqemulator==1.4.0"
if [ -x "$VENV/bin/bqemulator" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("bqemulator") == "1.4.0" and m.version("duckdb") == "1.5.5" else 1)
PY
then
  # the extension lives under $HOME: make sure it is there for this user too
  "$VENV/bin/python" -c "from duckdb_extensions import import_extension; import_extension('spatial')"
  exit 0
fi
echo "installing $PIN into $VENV (about a minute)..."
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  "$PIN" "duckdb==1.5.5" "duckdb-extensions==1.5.5" "duckdb-extension-spatial==1.5.5" "numpy"
"$VENV/bin/python" -c "from duckdb_extensions import import_extension; import_extension('spatial')"
echo "bqemulator installed in $VENV"
