#!/usr/bin/env bash
# The long kill -9 loop: tests/tests/crash_durability.rs with many kills, on a
# release build. Usage: scripts/crash-loop.sh [KILLS] [SEED]
#   KILLS  kills per durability mode (default 200; ~1 s each; four modes)
#   SEED   kill-timing seed (default: from the clock; printed for replay)
# Prints one "crash-loop result:" line per mode; record them in
# docs/RELIABILITY.md. Exits non-zero if any acknowledged record was lost or
# duplicated, or a corrupt batch was served.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-200}
cargo build --release --locked -p ringlog-server --bin ringlog
export RINGLOG_BIN="$PWD/target/release/ringlog" RINGLOG_CRASH_KILLS="$KILLS"
if [[ -n "${2:-}" ]]; then export RINGLOG_CRASH_SEED="$2"; fi
# One mode at a time: each test kills its own broker; running both at once
# would only halve each one's pace.
cargo test --release --locked -p ringlog-tests --test crash_durability -- --nocapture --test-threads 1 \
  2>&1 | grep -E "crash loop:|crash-loop result:|panicked|lost|test result"
