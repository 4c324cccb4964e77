#!/usr/bin/env bash
# Installs what building and testing tracegate needs beyond a Rust toolchain: cmake (Pingora
# builds zlib-ng with it), prometheus (the metrics test runs a real Prometheus server, which
# must scrape both exposition formats and store exemplars), chromium (the trace viewer's
# browser test renders its page in headless Chromium and reads the DOM the scripts built),
# apache2-utils (the basic-auth test writes its users file with Apache's own `htpasswd -B`, so
# the parser is checked against the files operators really have) and redis-server (the rate
# limiter's Redis tests run real servers, stop one mid-test and restart it, to check the shared
# budget, fail-open/closed and reconnection).
# Debian/Ubuntu only; does nothing when all of them are already there.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing ${missing[*]} (cmake builds Pingora; prometheus runs in the metrics test;" \
    "chromium in the viewer's browser test; htpasswd in the basic-auth test; redis-server in" \
    "the rate limiter's Redis tests)..." >&2
  # The metrics and rate-limit tests start their Prometheus and Redis servers themselves, on
  # free ports: keep the packages from starting their services on ports 9090 and 6379 (a
  # policy-rc.d already there is left as it is).
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$policy" ]; then $SUDO rm -f "$policy"; fi
fi
