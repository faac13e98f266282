#!/usr/bin/env bash
# Installs every Debian package vigil needs to build, test and benchmark. Idempotent: packages
# already present are not reinstalled, and apt-get update runs only when something is missing.
set -euo pipefail

packages=(
  # build
  gcc make cmake pkg-config
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libopenblas-dev
  # tests
  libcmocka-dev python3-onnx python3-sklearn python3-numpy
  # benchmarks (ONNX Runtime comes from npm, see bench/engine)
  nodejs npm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
