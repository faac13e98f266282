#!/usr/bin/env bash
# Training benchmark: `vigil train` next to scikit-learn (holdout quality on the same splits,
# training time on 200,000 rows), and vigil's trained models on vigil's engine next to ONNX
# Runtime (identical outputs, timings). Only prints; not a test. Method: bench/train/bench.py.
#
# Usage: bench/train/run.sh [BUILD_DIR | --build-dir DIR] [--quick] [--update-docs]
#                           [--seeds N] [--rounds N] [--only quality,speed,predict]
#   BUILD_DIR        CMake build directory (default: $VG_BUILD_DIR, else build/ at the top of the
#                    tree); vigil and engine_bench are (re)built there first; working files and
#                    the cached 200,000-row CSV go to BUILD_DIR/bench-train/
#   --quick          fewer prediction timing runs (figures are rough)
#   --update-docs    write the figures to docs/benchmarks-training.md
#   --seeds N        splits/seeds for the quality comparison (default 5)
#   --rounds N       training-time rounds, best kept (default 1)
#   --only PARTS     comma-separated subset (predict implies quality)
# Needs /usr/bin/python3 with numpy and scikit-learn, node, and bench/engine/node_modules
# (installed with `npm ci --ignore-scripts` when missing, as bench/engine/run.sh does).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ENGINE=$ROOT/bench/engine
BUILD=${VG_BUILD_DIR:-$ROOT/build}
PY=/usr/bin/python3
CMD="bench/train/run.sh $*"
EXTRA=()
DOCS=0

while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) BUILD=$2; shift 2 ;;
    --quick) EXTRA+=(--quick); shift ;;
    --update-docs) DOCS=1; shift ;;
    --seeds | --rounds | --only) EXTRA+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
    esac
done

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

# Same single-threaded engine setup as bench/engine/run.sh (see the reasons there).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ -z "${VG_BENCH_KEEP_CORETYPE:-}" ]; then
    unset OPENBLAS_CORETYPE
fi

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target vigil engine_bench >/dev/null

if [ ! -d "$ENGINE/node_modules/onnxruntime-node" ]; then
    echo "installing onnxruntime-node (npm ci --ignore-scripts) ..." >&2
    (cd "$ENGINE" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi

args=(--work "$BUILD/bench-train" --vigil "$BUILD/vigil" --engine-bench "$BUILD/engine_bench"
      --ort-js "$ENGINE/ort_bench.js" --command "$CMD" "${EXTRA[@]}")
if [ "$DOCS" = 1 ]; then
    args+=(--docs "$ROOT/docs/benchmarks-training.md")
fi
exec "$PY" "$HERE/bench.py" "${args[@]}"
