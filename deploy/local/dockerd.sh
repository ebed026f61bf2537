#!/usr/bin/env bash
# A Docker engine for the container tests and the local compose stack, where none answers yet:
# Debian's dockerd (docker.io, which `make system` installs), overlay2 storage, detached, its log in
# $LOGLAKE_HOME/dockerd.log. Starting it needs root. Exits 0 once an engine answers, else 1 and why.
#   deploy/local/dockerd.sh        start one unless an engine answers
#   deploy/local/dockerd.sh stop   stop the one this script started (none other)
set -euo pipefail
LOG_DIR=${LOGLAKE_HOME:-$HOME/.cache/loglake}
PID_FILE=$LOG_DIR/dockerd.pid
answers() { docker info >/dev/null 2>&1; }
if [ "${1:-start}" = stop ]; then
  pid=$(cat "$PID_FILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    echo "dockerd stopped"
  fi
  rm -f "$PID_FILE"
  exit 0
fi
if answers; then echo "a Docker engine answers"; exit 0; fi
command -v dockerd >/dev/null || { echo "no dockerd (Debian: apt-get install docker.io)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "starting dockerd needs root: sudo $0" >&2; exit 1; }
mkdir -p "$LOG_DIR"
setsid nohup dockerd --storage-driver overlay2 >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
echo $! >"$PID_FILE"
for _ in $(seq 60); do
  if answers; then echo "dockerd started (log: $LOG_DIR/dockerd.log)"; exit 0; fi
  sleep 1
done
tail -15 "$LOG_DIR/dockerd.log" >&2
echo "dockerd did not answer within 60 s (log: $LOG_DIR/dockerd.log)" >&2
exit 1
