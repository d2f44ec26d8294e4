#!/usr/bin/env bash
# Runs bqemulator on 127.0.0.1:PORT for as long as process PARENT lives (used by the Rust test
# harness, so that an emulator it starts never outlives the test run).
# usage: bqemu-watchdog.sh PARENT_PID PORT GRPC_PORT LOGFILE
set -u
PARENT=$1 PORT=$2 GRPC_PORT=$3 LOG=$4
VENV=${BQEMU_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-bqemu}
"$VENV/bin/bqemulator" start --rest-host 127.0.0.1 --rest-port "$PORT" --grpc-host 127.0.0.1 \
  --grpc-port "$GRPC_PORT" --project test-project --ephemeral --log-level warning >"$LOG" 2>&1 </dev/null &
child=$!
trap 'kill $child 2>/dev/null; exit 0' TERM INT
while kill -0 "$PARENT" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill "$child" 2>/dev/null
for _ in $(seq 1 30); do kill -0 "$child" 2>/dev/null || exit 0; sleep 0.1; done
kill -9 "$child" 2>/dev/null
