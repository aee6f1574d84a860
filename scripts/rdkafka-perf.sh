#!/usr/bin/env bash
# librdkafka's own load generator (rdkafka_performance, from the librdkafka
# tree the rdkafka-sys crate builds) against a fresh release broker, so the
# figures do not rest on ringlog-bench alone. Same workload as scripts/bench.sh:
# 1 KiB records, 8 partitions, acks=1.
# Usage: scripts/rdkafka-perf.sh [RECORDS]   (default 15,000,000 produced)
# RINGLOG_SET="key=value ..." adds broker settings, e.g. log.read.mode=direct.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-15000000}
cargo build --release --locked -p ringlog-server --bin ringlog
# rdkafka-sys's configured librdkafka tree and static libraries come with the tests' build.
cargo build --release --locked -p ringlog-tests --test crash_durability >/dev/null 2>&1
OUT=$(dirname "$(find target/release/build -path '*rdkafka-sys-*/out/config.h' | head -1)")
ZSTD=$(find target/release/build -name libzstd.a | head -1)
PERF=target/release/rdkafka_performance
(cd "$OUT/examples" && gcc -O2 -o "$OLDPWD/$PERF" rdkafka_performance.c -I../src ../src/librdkafka.a \
  "$OLDPWD/$ZSTD" -lz -lpthread -lm -ldl -lrt)
DATA=$(mktemp -d /work/rdkafka-perf-XXXX 2>/dev/null || mktemp -d)
PID=
trap 'if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$DATA"' EXIT
target/release/ringlog serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$DATA/data" \
  --log-level warn --set log.segment.bytes=268435456 --set log.retention.bytes=1073741824 \
  --set log.retention.check.interval.ms=1000 ${RINGLOG_SET:+$(printf -- '--set %s ' $RINGLOG_SET)} \
  >"$DATA/out" 2>"$DATA/log" &
PID=$!
until grep -q "listening on" "$DATA/out" 2>/dev/null; do sleep 0.05; done
ADDR=$(awk '/listening on/ {print $4}' "$DATA/out")
target/release/ringlog topic create perf --partitions 8 --bootstrap "$ADDR" >/dev/null
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$PID/stat"; }
# The client's own ceiling on this machine, as fio and iperf3 are the disk's
# and loopback's in scripts/bench.sh: the same produce against librdkafka's
# in-process mock broker (memory only, no CRC check, no disk).
echo "== client ceiling: produce $RECORDS x 1 KiB to librdkafka's mock broker"
"$PERF" -P -t perf -s 1024 -c "$RECORDS" -a 1 -X test.mock.num.brokers=1 -X linger.ms=5 -X batch.size=1000000 \
  -X queue.buffering.max.kbytes=1048576 -u 2>&1 | tail -1
echo "== produce: $RECORDS x 1 KiB"
before=$(cpu_s)
"$PERF" -P -t perf -b "$ADDR" -s 1024 -c "$RECORDS" -a 1 -X linger.ms=5 -X batch.size=1000000 \
  -X queue.buffering.max.kbytes=1048576 -u 2>&1 | tail -1
echo "broker_cpu_s $(awk -v a="$(cpu_s)" -v b="$before" 'BEGIN {print a - b}')"
# How much of what went to disk with O_DIRECT was written from the request
# frames themselves (librdkafka's requests carry several partitions' batches;
# the connection places only the first, docs/PERFORMANCE.md session 14).
METRICS=$(grep -i metrics "$DATA/out" | grep -o "127.0.0.1:[0-9]*" | head -1)
curl -s "http://$METRICS/metrics" | awk '
  /^ringlog_core_direct_written_bytes_total/ { written += $2 }
  /^ringlog_core_direct_written_in_place_bytes_total/ { in_place += $2 }
  END { if (written > 0) printf "direct_written_mb %.0f in_place %.1f%%\n", written / 1e6, 100 * in_place / written }'
# Consumers keep librdkafka's default fetch sizes (1 MiB per partition), as
# its users do: with 4 MiB the same read from the broker's memory ran at
# 440-470 MB/s against 650-830 (docs/PERFORMANCE.md, session 5).
echo "== consume, group consumer, 8 partitions from the beginning"
# Retention keeps at least 768 MiB per partition (1 GiB less one 256 MiB
# segment): over 700 k records of 1 KiB each, 5.8 M in all. A consumer asking
# for more than is kept would wait for ever.
GROUP_RECORDS=$((RECORDS / 2 < 5000000 ? RECORDS / 2 : 5000000))
PARTITION_RECORDS=$((RECORDS / 16 < 500000 ? RECORDS / 16 : 500000))
"$PERF" -C -t perf -G perf-readers -b "$ADDR" -c "$GROUP_RECORDS" -o beginning -u 2>&1 | grep -v "^%" | tail -1
# With a node per core the consumer has a fetch thread per node; when they
# outpace its application thread, librdkafka pauses a full partition queue
# for fetch.queue.backoff.ms (1 s by default). The same read with 10 ms shows
# what the broker serves (docs/PERFORMANCE.md, session 10).
echo "== consume, group consumer, fetch.queue.backoff.ms=10"
"$PERF" -C -t perf -G perf-readers-2 -b "$ADDR" -c "$GROUP_RECORDS" -o beginning -u -X fetch.queue.backoff.ms=10 2>&1 \
  | grep -v "^%" | tail -1
echo "== consume, one partition (simple consumer)"
# Partition 0 holds about RECORDS / 8 (the partitioner spreads keyless
# records at random); ask for half of that so the consumer never waits for more.
"$PERF" -C -t perf -p 0 -b "$ADDR" -c "$PARTITION_RECORDS" -o beginning -u 2>&1 | grep -v "^%" | tail -1
