#!/usr/bin/env bash
# Starts, stops or checks the local BigQuery emulator (bqemulator) on 127.0.0.1.
#   scripts/bqemulator.sh start [PORT]   start in the background (if not running) and wait until ready
#   scripts/bqemulator.sh stop  [PORT]
#   scripts/bqemulator.sh status [PORT]
# State lives in .local/ (pid and log per port). The emulator keeps data in memory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BQEMU_VENV:-$ROOT/.venv-bqemu}
CMD=${1:-status}
PORT=${2:-${BQEMU_PORT:-9050}}
GRPC_PORT=$((PORT + 10))
STATE=$ROOT/.local
PIDFILE=$STATE/bqemulator-$PORT.pid
LOG=$STATE/bqemulator-$PORT.log
mkdir -p "$STATE"

ready() { curl -sf -m 2 "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; }

case "$CMD" in
  start)
    if ready; then echo "bqemulator already running on 127.0.0.1:$PORT"; exit 0; fi
    "$ROOT/scripts/install-bqemulator.sh"
    echo "starting bqemulator on 127.0.0.1:$PORT (log: $LOG); waiting until it answers /readyz"
    setsid "$VENV/bin/bqemulator" start --rest-host 127.0.0.1 --rest-port "$PORT" \
      --grpc-host 127.0.0.1 --grpc-port "$GRPC_PORT" --project test-project --ephemeral \
      --log-level warning >"$LOG" 2>&1 < /dev/null &
    echo $! >"$PIDFILE"
    for i in $(seq 1 300); do
      if ready; then echo "bqemulator ready on 127.0.0.1:$PORT after $((i / 5)) s"; exit 0; fi
      if [ $((i % 25)) -eq 0 ]; then echo "  still starting ($((i / 5)) s)"; fi
      kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "bqemulator died:"; tail -n 30 "$LOG"; exit 1; }
      sleep 0.2
    done
    echo "bqemulator not ready after 60 s"; tail -n 30 "$LOG"; exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      pid=$(cat "$PIDFILE")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      echo "bqemulator on port $PORT stopped"
    else
      echo "bqemulator on port $PORT is not running (no pid file)"
    fi
    ;;
  status)
    if ready; then echo "bqemulator running on 127.0.0.1:$PORT"; else echo "bqemulator not running on 127.0.0.1:$PORT"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status [PORT]"; exit 2 ;;
esac
