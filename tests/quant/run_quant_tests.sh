#!/bin/sh
# The int8 graphs checked against ONNX Runtime (ctest: quant_ort); see tests/quant/README.md.
#
#   run_quant_tests.sh RUNNER PYTHON SRC_DIR OUT_DIR
#
# Generates the graphs (make_graphs.py), ONNX Runtime's outputs (run_ort.js) and the per-layer
# cases into OUT_DIR, again only when OUT_DIR has no stamp or a file of tests/quant is newer than
# it; then runs the conformance runner: the small graphs and every efficientnet-lite layer within
# one quantization step (--int-atol 1), the efficientnet-lite graph end to end within two.
# Exits 77 (ctest: skipped) when Node.js or tests/quant/node_modules is missing.
set -eu

runner=$1 python=$2 src=$3 out=$4
q="$src/tests/quant"

if ! command -v node >/dev/null 2>&1 || [ ! -d "$q/node_modules/onnxruntime-node" ]; then
    echo "SKIP: needs Node.js and tests/quant/node_modules" \
        "(npm ci --ignore-scripts --prefix tests/quant, done by scripts/install-deps.sh)"
    exit 77
fi

stamp="$out/.generated"
regen=0
if [ ! -f "$stamp" ]; then
    regen=1
else
    for f in "$q"/*.py "$q"/*.js "$q"/package-lock.json; do
        if [ "$f" -nt "$stamp" ]; then
            regen=1
        fi
    done
fi
if [ "$regen" = 1 ]; then
    echo "generating int8 graphs and ONNX Runtime outputs into $out"
    rm -rf "$out"
    "$python" "$q/make_graphs.py" "$out"
    node "$q/run_ort.js" "$out"/graphs/test_* "$out"/end_to_end/test_* "$out/effnet_all"
    "$python" "$q/make_graphs.py" split "$out/effnet_all" "$out/layers"
    touch "$stamp"
fi

status=0
echo "== small graphs and efficientnet-lite layer by layer: within 1 step"
"$runner" "$out/graphs" "$out/layers" --int-atol 1 -v || status=1
echo "== efficientnet-lite end to end: within 2 steps"
"$runner" "$out/end_to_end" --int-atol 2 -v || status=1
exit $status
