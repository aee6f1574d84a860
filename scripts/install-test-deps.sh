#!/usr/bin/env bash
# Installs what the integration tests need, idempotently: kcat (Debian),
# Python virtualenvs with kafka-python 2.0, kafka-python 3.x and
# confluent-kafka, and kafkajs 2.2 (npm). Safe to run again: each step is
# skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v kcat >/dev/null 2>&1; then
  echo "installing kcat"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
fi

make_venv() { # name, pip requirements...
  local name=$1; shift
  local venv=".venv/$name" stamp=".venv/$name/.installed"
  local wanted="$*"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then return; fi
  echo "creating venv $venv ($wanted)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
  echo "$wanted" > "$stamp"
}
make_venv kafka-python-2 "kafka-python==2.0.2"
make_venv kafka-python-3 "kafka-python>=3,<4" "zstandard"
make_venv confluent-kafka "confluent-kafka>=2.3,<3"

if [ ! -d tests/js/node_modules/kafkajs ]; then
  echo "installing kafkajs"
  (cd tests/js && npm install --silent --no-audit --no-fund >/dev/null)
fi
