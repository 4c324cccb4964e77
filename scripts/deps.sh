#!/usr/bin/env bash
# Installs what building tracegate needs beyond a Rust toolchain: cmake (Pingora builds zlib-ng
# with it). Debian/Ubuntu only; does nothing when cmake is already there.
set -euo pipefail
if ! command -v cmake >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing cmake (needed to build Pingora)..." >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null
fi
