#!/usr/bin/env bash
# Scale figures for docs/PERFORMANCE.md: TOPICS x PARTITIONS partitions on one
# broker (default 100 x 100 = 10,000). Measures topic creation, Metadata for
# all topics, one record produced to every partition, then RSS and open file
# descriptors, and a restart (time to serve, RSS, descriptors).
# Usage: scripts/scale.sh [TOPICS] [PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
TOPICS=${1:-100}
PARTITIONS=${2:-100}
scripts/install-test-deps.sh >/dev/null
cargo build --release --locked -p ringlog-server --bin ringlog 2>/dev/null
DATA=$(mktemp -d /work/scale-XXXX 2>/dev/null || mktemp -d)
PID=
trap 'if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$DATA"' EXIT
PY=.venv/confluent-kafka/bin/python

start_broker() { # sets PID, ADDR, METRICS and STARTUP_S (seconds until it serves)
  local started; started=$(date +%s.%N)
  target/release/ringlog serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$DATA/data" \
    --log-level warn >"$DATA/broker.out" 2>>"$DATA/broker.log" &
  PID=$!
  until grep -q "listening on" "$DATA/broker.out" 2>/dev/null; do
    kill -0 "$PID" || { cat "$DATA/broker.log"; exit 1; }
    sleep 0.05
  done
  STARTUP_S=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
  ADDR=$(awk '/listening on/ {print $4}' "$DATA/broker.out")
  METRICS=$(awk '/metrics on/ {print $4}' "$DATA/broker.out")
}
stop_broker() { # SIGTERM; sets STOP_S (seconds until the process is gone)
  local started; started=$(date +%s.%N)
  kill -TERM "$PID"; wait "$PID" || true
  STOP_S=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
  PID=
}
report() { # label
  echo "$1 rss_mib $(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status") open_fds $(ls "/proc/$PID/fd" | wc -l)"
}

start_broker
echo "first_start_s $STARTUP_S"
report idle
$PY scripts/scale/partitions.py "$ADDR" "$TOPICS" "$PARTITIONS"
report loaded
curl -s "$METRICS/metrics" | grep -E "^ringlog_core_(partitions|segments)" || true
echo "broker_warnings $(grep -cE " (WARN|ERROR) " "$DATA/broker.log" || true)"
grep -E " (WARN|ERROR) " "$DATA/broker.log" | sed -E 's/^[^ ]+ +//; s/(path|dir|segment|failure|error)=[^ ]+/\1=…/g' | sort | uniq -c | sort -rn | head -5 || true
stop_broker
echo "clean_shutdown_s $STOP_S"
start_broker
echo "restart_s $STARTUP_S"
report restarted
stop_broker
echo "second_clean_shutdown_s $STOP_S"
