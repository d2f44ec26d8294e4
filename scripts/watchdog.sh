#!/usr/bin/env bash
# Runs COMMAND for as long as process PARENT lives, its output in LOGFILE (used by the Rust test
# harness, so that a server it starts never outlives the test run).
# usage: watchdog.sh PARENT_PID LOGFILE COMMAND [ARGS...]
set -u
PARENT=$1 LOG=$2
shift 2
"$@" >"$LOG" 2>&1 </dev/null &
child=$!
trap 'kill $child 2>/dev/null; exit 0' TERM INT
while kill -0 "$PARENT" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill "$child" 2>/dev/null
for _ in $(seq 1 30); do kill -0 "$child" 2>/dev/null || exit 0; sleep 0.1; done
kill -9 "$child" 2>/dev/null
