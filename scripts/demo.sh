#!/usr/bin/env bash
# `make run` until the server lands: shows the built-in model (models/iris, trained by
# `vigil train` from data/iris.csv during `make build`) and runs three flowers through it.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(ls -d "$root"/models/iris/[0-9]* | sort -t/ -k1 -V | tail -n 1)/model.onnx
demo="$build/demo"
mkdir -p "$demo"
# sepal_length, sepal_width, petal_length, petal_width: a setosa, a versicolor, a virginica
/usr/bin/python3 -c 'import numpy as np, sys; np.save(sys.argv[1], np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 5.1, 1.6], [6.9, 3.1, 5.4, 2.1]], np.float32))' "$demo/flowers.npy"
"$build/vigil" inspect "$model"
echo
echo "vigil run on three flowers (expected: setosa, versicolor, virginica):"
"$build/vigil" run "$model" --input "input=$demo/flowers.npy"
