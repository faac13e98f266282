#!/usr/bin/env bash
# Engine benchmark: vigil's engine next to ONNX Runtime on the same models, inputs and thread
# budget; prints a table; checks the answers against scikit-learn and each other. Only prints.
#
# Usage: bench/engine/run.sh [BUILD_DIR | --build-dir DIR] [--quick] [--update-docs] [--only NAME]
#   BUILD_DIR        CMake build directory for engine_bench (default: $VG_BUILD_DIR, else build/
#                    at the top of the tree); engine_bench is (re)built there first
#   --quick          fewer runs (a smoke run of the whole pipeline, figures are rough)
#   --update-docs    write the figures to docs/benchmarks.md (a vision run: its own section)
#   --only NAME      one model (rf100_iris, rf500_iris, gb300_cancer, mlp_784), or "vision" for
#                    the vision models (resnet18, mobilenet_v2, efficientnet_b0, squeezenet1_1,
#                    int8_lite: batch-1 latency, needs torch), or one of those
#   --conv           with a vision run: also conv_backends, every convolution of the vision
#                    models on vigil, oneDNN and im2col + OpenBLAS (needs libdnnl-dev)
#   --profile        with a vision run: ONNX Runtime's per-node trace and `perf record` of
#                    engine_bench, summarised per operator by profile_vision.py
#   --rounds N       repeat every measurement N times, alternating engines, and keep each
#                    figure's best round (default 3, 1 with --quick): other processes on the
#                    machine only ever make a round slower
# Needs /usr/bin/python3 with numpy, onnx and scikit-learn (vision: torch, torchvision), node, and bench/engine/node_modules
# (installed here with `npm ci --ignore-scripts` when missing: onnxruntime-node's install script
# would download binaries, but the npm package already carries libonnxruntime for linux x64).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${VG_BUILD_DIR:-$ROOT/build}
PY=/usr/bin/python3
QUICK=0
DOCS=0
ONLY=""
ROUNDS=""
CONV=0
PROFILE=0
CMD="bench/engine/run.sh $*"

while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) BUILD=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --update-docs) DOCS=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --conv) CONV=1; shift ;;
    --profile) PROFILE=1; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
    esac
done

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

VISION_MODELS="resnet18 mobilenet_v2 efficientnet_b0 squeezenet1_1 int8_lite"
VISION=0
case " vision $VISION_MODELS " in *" $ONLY "*) VISION=1 ;; esac

if [ "$QUICK" = 1 ]; then
    RUNS=(--single 2000 --warmup 200 --batch-runs 2)
    VRUNS=(--single 10 --warmup 2 --batch-runs 0)
    ROUNDS=${ROUNDS:-1}
else
    RUNS=(--single 20000 --warmup 2000 --batch-runs 15)
    VRUNS=(--single 60 --warmup 10 --batch-runs 0)
    ROUNDS=${ROUNDS:-3}
fi

# Both engines single-threaded: vigil pins OpenBLAS to one thread itself, ORT by session options.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# OpenBLAS chooses its kernels for the CPU it finds, as it does in a deployment; an
# OPENBLAS_CORETYPE inherited from this machine's environment (ours pins "Haswell", i.e. AVX2 only,
# on an AVX-512 CPU) would benchmark a configuration no deployment of vigil sets. The kernel set
# OpenBLAS used is printed with the results. Set VG_BENCH_KEEP_CORETYPE=1 to keep the inherited one.
if [ -z "${VG_BENCH_KEEP_CORETYPE:-}" ]; then
    unset OPENBLAS_CORETYPE
fi

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target engine_bench >/dev/null
BENCH=$BUILD/engine_bench

if [ ! -d "$HERE/node_modules/onnxruntime-node" ]; then
    echo "installing onnxruntime-node (npm ci --ignore-scripts) ..." >&2
    (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi

if [ "$VISION" = 1 ]; then
    # Vision models: batch-1 latency, the engines alternating per model and round.
    VWORK=$BUILD/bench-engine/vision
    mkdir -p "$VWORK/models" "$VWORK/outputs"
    rm -f "$VWORK"/outputs/*.npy "$VWORK/results.jsonl"
    "$PY" "$HERE/vision_models.py" "$VWORK/models" --layers "$VWORK/layers.txt"
    vnames=$("$PY" -c 'import json, sys; print(" ".join(m["name"] for m in json.load(open(sys.argv[1]))))' \
        "$VWORK/models/models.json")
    for round in $(seq "$ROUNDS"); do
        for name in $vnames; do
            if [ "$ONLY" != vision ] && [ "$name" != "$ONLY" ]; then
                continue
            fi
            model=$VWORK/models/$name.onnx
            batch=$VWORK/models/$name.npy
            echo "round $round/$ROUNDS: timing $name ..." >&2
            "$BENCH" "$model" "$batch" "${VRUNS[@]}" --out-dir "$VWORK/outputs" --name "$name" \
                >>"$VWORK/results.jsonl" || echo "engine_bench failed on $name" >&2
            node "$HERE/ort_bench.js" "$model" "$batch" "${VRUNS[@]}" --async-single 0 \
                --out-dir "$VWORK/outputs" --name "$name" >>"$VWORK/results.jsonl" ||
                echo "ort_bench failed on $name" >&2
        done
    done
    if [ "$PROFILE" = 1 ]; then
        for name in $vnames; do
            if [ "$ONLY" != vision ] && [ "$name" != "$ONLY" ]; then
                continue
            fi
            "$PY" "$HERE/profile_vision.py" "$VWORK" "$name" --bench "$BENCH" ||
                echo "profile failed on $name" >&2
        done
    fi
    if [ "$CONV" = 1 ]; then
        if cmake --build "$BUILD" --target conv_backends >/dev/null 2>&1; then
            conv_only=()
            if [ "$ONLY" != vision ]; then conv_only=(--only "$ONLY"); fi
            crounds=$ROUNDS
            cms=150
            if [ "$QUICK" = 1 ]; then cms=20; fi
            "$BUILD/conv_backends" --layers "$VWORK/layers.txt" --rounds "$crounds" --min-ms "$cms" \
                --json "$VWORK/conv_backends.jsonl" "${conv_only[@]}" >"$VWORK/conv_backends.md" ||
                echo "conv_backends reported disagreeing outputs (see above)" >&2
            cat "$VWORK/conv_backends.md"
        else
            echo "conv_backends not built (oneDNN missing? see bench/bench.cmake)" >&2
        fi
    fi
    report_args=("$VWORK" --vision --command "$CMD")
    if [ "$DOCS" = 1 ]; then
        report_args+=(--docs "$ROOT/docs/benchmarks.md")
    fi
    exec "$PY" "$HERE/report.py" "${report_args[@]}"
fi

WORK=$BUILD/bench-engine
mkdir -p "$WORK/models" "$WORK/outputs"
rm -f "$WORK"/outputs/*.npy "$WORK/results.jsonl"
"$PY" "$HERE/make_models.py" "$WORK/models"

names=$("$PY" -c 'import json, sys; print(" ".join(m["name"] for m in json.load(open(sys.argv[1]))))' \
    "$WORK/models/models.json")
for round in $(seq "$ROUNDS"); do
    for name in $names; do
        if [ -n "$ONLY" ] && [ "$name" != "$ONLY" ] && [ "$name" != identity ]; then
            continue
        fi
        model=$WORK/models/$name.onnx
        batch=$WORK/models/$name.npy
        echo "round $round/$ROUNDS: timing $name ..." >&2
        "$BENCH" "$model" "$batch" "${RUNS[@]}" --out-dir "$WORK/outputs" --name "$name" \
            >>"$WORK/results.jsonl" || echo "engine_bench failed on $name" >&2
        node "$HERE/ort_bench.js" "$model" "$batch" "${RUNS[@]}" --out-dir "$WORK/outputs" \
            --name "$name" >>"$WORK/results.jsonl" || echo "ort_bench failed on $name" >&2
    done
done

report_args=("$WORK" --command "$CMD")
if [ "$DOCS" = 1 ]; then
    report_args+=(--docs "$ROOT/docs/benchmarks.md")
fi
"$PY" "$HERE/report.py" "${report_args[@]}"
