#!/bin/sh
# Runs ONNX's backend node tests and our fixture cases through the engine (ctest: onnx_conformance).
#
#   run_conformance.sh RUNNER PYTHON SRC_DIR OUT_DIR EXCLUSIONS [runner options...]
#
# The cases are generated into OUT_DIR by scripts/gen_onnx_node_tests.py, again only when OUT_DIR
# has no stamp or a generator script (the ONNX one or tests/fixtures/*.py) is newer than the stamp.
set -eu

runner=$1 python=$2 src=$3 out=$4 exclusions=$5
shift 5

stamp="$out/.generated"
regen=0
if [ ! -f "$stamp" ]; then
    regen=1
else
    for f in "$src/scripts/gen_onnx_node_tests.py" "$src"/tests/fixtures/*.py; do
        if [ -f "$f" ] && [ "$f" -nt "$stamp" ]; then
            regen=1
        fi
    done
fi
if [ "$regen" = 1 ]; then
    echo "generating conformance cases into $out"
    rm -rf "$out"
    "$python" "$src/scripts/gen_onnx_node_tests.py" "$out"
    touch "$stamp"
fi

exec "$runner" "$out/node" "$out/simple" "$out" --exclusions "$exclusions" "$@"
