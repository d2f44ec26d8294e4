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
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "python3 cannot create virtualenvs: install python3-venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
  exit 1
fi
echo "installing $PIN into $VENV (first time only; a few minutes, about 600 MB installed)"
echo "  [1/3] creating the virtualenv"
python3 -m venv "$VENV"
echo "  [2/3] pip install $PIN duckdb==1.5.5 (+ its spatial extension wheel) numpy: pip prints each package"
PYTHONUNBUFFERED=1 "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off \
  "$PIN" "duckdb==1.5.5" "duckdb-extensions==1.5.5" "duckdb-extension-spatial==1.5.5" "numpy" \
  | grep --line-buffered -E '^(Collecting|Successfully installed)' | sed -u 's/^/        /'
echo "  [3/3] loading DuckDB's spatial extension"
"$VENV/bin/python" -c "from duckdb_extensions import import_extension; import_extension('spatial')"
echo "bqemulator installed in $VENV"
