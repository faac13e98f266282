#!/usr/bin/env bash
# Installs the Debian packages vigil needs to build and test; with --bench, also what the
# benchmarks need (Node.js and npm, for ONNX Runtime from npm: see bench/engine; wrk and nginx for
# the HTTP benchmark: see bench/http). Idempotent:
# packages already present are not reinstalled, and apt-get update runs only when something is
# missing.
set -euo pipefail

packages=(
  # build
  gcc make cmake pkg-config
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libopenblas-dev libcjson-dev libmicrohttpd-dev
  libssl-dev
  # tests
  libcmocka-dev python3-onnx python3-sklearn python3-numpy prometheus curl jq
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = "--bench" ]; then
  # Any Node.js with npm will do (some machines have NodeSource's nodejs, which bundles npm and
  # conflicts with Debian's npm package), so look for the commands, not the packages.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  # bench/http: wrk drives the load and a static nginx is the baseline. Any nginx flavour will do
  # (nginx-light is the smallest), so look for the binary.
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
