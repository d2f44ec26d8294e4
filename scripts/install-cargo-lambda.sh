#!/usr/bin/env bash
# Installs cargo-lambda (the Cargo Lambda CLI: a local Lambda emulator, `cargo lambda watch`, and
# its client, `cargo lambda invoke`) from PyPI into the project-local tools virtualenv, for
# tests/cargo_lambda.rs. Pinned; idempotent. No Zig is needed: `watch` builds with cargo for this
# machine (Zig is only for cross-compiling, which the tests never do).
set -euo pipefail
VENV=${TOOLS_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-tools}
CARGO_LAMBDA=1.9.2
if [ -x "$VENV/bin/cargo-lambda" ] && "$VENV/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA"; then
  exit 0
fi
echo "installing cargo-lambda==$CARGO_LAMBDA into $VENV..."
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA"
