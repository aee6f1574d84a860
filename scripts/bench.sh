#!/usr/bin/env bash
# The standard benchmark suite, with the machine's own limits measured in the
# same run (fio sequential O_DIRECT write, iperf3 over loopback), broker RSS at
# idle and after each run, broker CPU seconds per GB, and the megabytes each
# run wrote with O_DIRECT (broker-resources.txt).
#   DURATION=30 scripts/bench.sh            # results in bench/results/<time>/
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
DATA_PARENT=${DATA_PARENT:-/var/tmp}
mkdir -p "$OUT"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in fio iperf3; do
  command -v "$tool" >/dev/null || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
done
cargo build --release -q -p ringlog-server -p ringlog-bench
BENCH=target/release/ringlog-bench

DATA=$(mktemp -d -p "$DATA_PARENT" ringlog-bench.XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT

echo "== machine limits"
# On a VM, what waking an idle vCPU costs moves the e2e tail by several times
# (docs/PERFORMANCE.md, session 11): record the idle state with the limits.
{
  echo "cpuidle_driver $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)"
  echo "guest_halt_poll_ns $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo none)"
} | tee "$OUT/idle-state.txt"
fio --name=seqwrite --directory="$DATA" --rw=write --bs=1M --size=4G --direct=1 --ioengine=io_uring \
    --iodepth=8 --runtime=15 --time_based --group_reporting --output-format=json >"$OUT/fio.json"
rm -f "$DATA"/seqwrite*
iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
sleep 0.5
iperf3 -c 127.0.0.1 -p 5299 -t 10 -J >"$OUT/iperf3.json"
# The floor under every request/response latency: a thread on one CPU waking
# a thread on the other and back, no broker involved.
"$BENCH" wakeup --duration-s 5 --json "$OUT/wakeup.json"

echo "== broker"
# Cap disk use: per partition at most 384 MiB of closed segments plus the
# active one (128 MiB), so about 4 GiB per 8-partition topic; the warm
# consume reads all of it from the page cache. The target is defined on
# the page cache, so sent pages stay cached (log.read.drop.page.cache=false;
# by default they leave it, see docs/ARCHITECTURE.md). The batch cache
# is fixed at 256 MiB a core (auto starts there but grows when consumers
# miss what it evicted) so that the first consume reads mostly from disk,
# as the baselines' did.
target/release/ringlog serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$DATA/data" --log-level warn \
  --set log.segment.bytes=134217728 --set log.retention.bytes=402653184 --set log.read.drop.page.cache=false \
  --set log.cache.bytes.per.core=268435456 \
  --set log.retention.check.interval.ms=1000 >"$OUT/broker.out" 2>"$OUT/broker.log" &
PID=$!
for _ in $(seq 50); do grep -q "listening" "$OUT/broker.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(awk '/listening on/ {print $4}' "$OUT/broker.out")
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$PID/stat"; }
echo "idle_rss_kb $(rss_kb)" >"$OUT/broker-resources.txt"

METRICS_ADDR=$(awk '/metrics on/ {print $4}' "$OUT/broker.out")
# The sum of a metric over its labels (0 if absent).
metric_sum() {
  python3 - "$METRICS_ADDR" "$1" <<'PY' || echo 0
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
name = sys.argv[2]
print(f"{sum(float(l.split()[-1]) for l in text.splitlines() if l.split('{')[0].split(' ')[0] == name):.0f}")
PY
}
# Each run's broker CPU, RSS after it, and what it wrote with O_DIRECT: with
# log.io.mode=auto the 50 MB/s e2e should write through the page cache
# (docs/PERFORMANCE.md, session 16).
run() { # name, workload, args...
  local name=$1; shift
  local before direct_before; before=$(cpu_s); direct_before=$(metric_sum ringlog_core_direct_written_bytes_total)
  "$BENCH" "$@" --bootstrap "$ADDR" --json "$OUT/$name.json" | tee "$OUT/$name.txt"
  local direct_mb; direct_mb=$(( ($(metric_sum ringlog_core_direct_written_bytes_total) - direct_before) / 1000000 ))
  echo "$name cpu_s $(awk -v a="$(cpu_s)" -v b="$before" 'BEGIN {print a - b}') rss_kb $(rss_kb) direct_mb $direct_mb" \
    >>"$OUT/broker-resources.txt"
}
run produce-1k produce --topic bench-1k --partitions 8 --record-bytes 1024 --acks 1 --duration-s "$DURATION"
# Which pages the produce frames went to (socket.request.huge.pages=auto
# decides by what fresh huge pages cost on this machine).
echo "request_frame_huge_pages $(metric_sum ringlog_request_frame_huge_pages)" >>"$OUT/broker-resources.txt"
# O_DIRECT writes bypass the page cache: the first pass reads from disk (and
# fills the cache through sendfile), the second reads from the page cache.
run consume-1k consume --topic bench-1k --partitions 8 --duration-s "$DURATION"
run consume-1k-warm consume --topic bench-1k --partitions 8 --duration-s "$DURATION"
run produce-100b produce --topic bench-100b --partitions 8 --record-bytes 100 --acks 1 --duration-s "$DURATION"
run e2e-50mb e2e --topic bench-e2e --partitions 8 --record-bytes 1024 --rate-mb-s 50 --duration-s "$DURATION"
# Produce while two consumers tail the same log (same topic: disk use stays capped).
run mixed-1k mixed --topic bench-1k --partitions 8 --record-bytes 1024 --acks 1 --duration-s "$DURATION"

echo "== results in $OUT"
cat "$OUT/broker-resources.txt"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
fio = json.load(open(os.path.join(out, "fio.json")))["jobs"][0]["write"]["bw_bytes"] / 1e6
iperf = json.load(open(os.path.join(out, "iperf3.json")))["end"]["sum_received"]["bits_per_second"] / 8e6
print(f"fio seq write {fio:.0f} MB/s, iperf3 loopback {iperf:.0f} MB/s")
wake = json.load(open(os.path.join(out, "wakeup.json")))["latency_ms"]
print(f"wake-up round trip between CPUs p50 {wake['p50']*1000:.0f} us p99 {wake['p99']*1000:.0f} us")
cpu = {line.split()[0]: float(line.split()[2]) for line in open(os.path.join(out, "broker-resources.txt"))
       if " cpu_s " in line}
for name in ["produce-1k", "consume-1k", "consume-1k-warm", "produce-100b", "e2e-50mb", "mixed-1k"]:
    r = json.load(open(os.path.join(out, f"{name}.json")))
    sides = [(name, r)] + ([(name + "-consumed", r["consumed"])] if r.get("consumed") else [])
    for label, side in sides:
        l = side["latency_ms"]
        print(f"{label:20} {side['mb_per_s']:8.1f} MB/s {side['records_per_s']:11.0f} rec/s  "
              f"{side['mb_per_s']/fio:5.0%} of disk {side['mb_per_s']/iperf:5.0%} of loopback  "
              f"p50 {l['p50']:.2f} p99 {l['p99']:.2f} p99.9 {l['p999']:.2f} ms")
    moved_gb = sum(side["bytes"] for _, side in sides) / 1e9
    if moved_gb > 0:
        print(f"{'':20} broker CPU {cpu[name] / moved_gb:.2f} s per GB moved")
PY
