#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the test dependencies,
# builds the broker, runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --locked -p ringlog-server --bin ringlog -p ringlog-bench --bin ringlog-bench
RINGLOG_BIN="$PWD/target/debug/ringlog" RINGLOG_BENCH_BIN="$PWD/target/debug/ringlog-bench" cargo test --locked --workspace "$@"
