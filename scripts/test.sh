#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against the real proxy binary with
# real upstreams and real OTLP receivers, and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo test --locked "$@"
