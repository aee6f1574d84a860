#!/usr/bin/env bash
# Fuzzes request decoding and record-batch parsing with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   default 300 s per target; targets: request record_batch
# Needs a nightly toolchain (cargo fuzz builds with -Zsanitizer); installs
# cargo-fuzz if missing. Any allocation over 256 MB is a failure (a length
# field must not size an allocation), as is any panic. New inputs land in
# tests/fuzz/corpus/<target>/; minimise with
#   cargo +nightly fuzz cmin --fuzz-dir tests/fuzz <target>
# before committing them. Crashes are written to tests/fuzz/artifacts/.
# The test suite replays the corpus on stable (tests/tests/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-300}
shift || true
TARGETS=("${@:-request record_batch}")
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
LOGS=$(mktemp -d)
failed=0
for target in ${TARGETS[*]}; do
  mkdir -p "tests/fuzz/corpus/$target"
  echo "== $target for ${SECONDS_PER_TARGET}s (log: $LOGS/$target.log)"
  status=0
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$target" "tests/fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -malloc_limit_mb=256 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$LOGS/$target.log" 2>&1 || status=$?
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|SUMMARY|Test unit written" \
    "$LOGS/$target.log" | tail -8 || true
  if [[ $status -ne 0 ]]; then
    echo "== $target FAILED (exit $status)"
    failed=1
  fi
done
exit $failed
