#!/usr/bin/env bash
# Installs what vigil needs to build and test: Debian packages, and the npm packages of the
# deploy validation test (tests/deploy, pinned by its package-lock.json). Options:
#   --bench       also what the benchmarks need (wrk and nginx for the HTTP benchmark: see
#                 bench/http; Node.js, which the tests need anyway, runs ONNX Runtime from npm
#                 for bench/engine)
#   --build-only  only what building the vigil binary needs (deploy/Dockerfile uses it): no test
#                 packages, no Node.js, no npm packages
# Idempotent: packages already present are not reinstalled, apt-get update runs only when
# something is missing, and npm ci runs only when tests/deploy/node_modules is missing or older
# than tests/deploy/package-lock.json.
set -euo pipefail

mode="${1:-}"
case "$mode" in
  "" | --bench | --build-only) ;;
  *) echo "usage: $0 [--bench | --build-only]" >&2; exit 2 ;;
esac

build_packages=(
  gcc make cmake pkg-config
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libopenblas-dev libcjson-dev libmicrohttpd-dev
  libssl-dev
  # image models: JPEG, PNG, EXIF orientation, image_url fetching
  libjpeg62-turbo-dev libpng-dev libexif-dev libcurl4-openssl-dev
  # oneDNN runs most float convolutions (src/engine/ops/conv_dnnl.c, docs/vision.md)
  libdnnl-dev
  # CMake's configure step requires cmocka (the unit tests), even to build the vigil target alone
  libcmocka-dev
)
test_packages=(
  python3-onnx python3-sklearn python3-numpy python3-yaml prometheus prometheus-alertmanager curl jq
  # vision tests: torchvision architectures exported at fixture-build time, test images
  python3-torch python3-torchvision python3-pil
)
packages=("${build_packages[@]}")
if [ "$mode" != --build-only ]; then
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$mode" != --build-only ]; then
  # Node.js and npm: the deploy validation test (tests/deploy) and the engine benchmark. Any
  # Node.js with npm will do (some machines have NodeSource's nodejs, which bundles npm and
  # conflicts with Debian's npm package), so look for the commands, not the packages.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if [ "$mode" = --bench ]; then
  # bench/http: wrk drives the load and a static nginx is the baseline. Any nginx flavour will do
  # (nginx-light is the smallest), so look for the binary.
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
fi
if [ ${#missing[@]} -ne 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$mode" != --build-only ]; then
  # npm packages of the tests, exactly as each package-lock.json pins them: the validators of
  # tests/deploy (validate.mjs) and ONNX Runtime for the int8 comparison of tests/quant.
  # onnxruntime-node's install script would download binaries; its npm package already carries
  # the linux-x64 library, so tests/quant installs with --ignore-scripts.
  root="$(cd "$(dirname "$0")/.." && pwd)"
  npm_install() { # DIR [npm ci options...]
    local dir=$1; shift
    [ -f "$dir/package-lock.json" ] || return 0
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      echo "installing the npm packages of ${dir#"$root"/} (npm ci)"
      npm ci --prefix "$dir" --no-audit --no-fund "$@"
      touch "$dir/node_modules"
    fi
  }
  npm_install "$root/tests/deploy"
  npm_install "$root/tests/quant" --ignore-scripts
fi
