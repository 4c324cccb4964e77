#!/usr/bin/env bash
# Builds and runs tracegate (release) on a config file, by default the shipped one.
# Usage: scripts/run.sh [CONFIG] [more tracegate args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
config="${1:-config/tracegate.yaml}"
shift || true
exec cargo run --release --locked -- --config "$config" "$@"
