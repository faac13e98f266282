#!/usr/bin/env bash
# `make run` until the server lands: trains a random forest on Iris with scikit-learn, exports it
# to ONNX with the test exporter, then shows `vigil inspect` and runs three flowers through it.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$build/demo"
mkdir -p "$demo"
/usr/bin/python3 - "$root" "$demo" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tests/fixtures")
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
import sklearn_export

iris = load_iris()
clf = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0)
clf.fit(iris.data.astype(np.float32), iris.target)
model = sklearn_export.to_onnx(clf, 4, name="iris_rf")
sklearn_export.save(model, sys.argv[2] + "/iris_rf.onnx")
flowers = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 5.1, 1.6], [6.9, 3.1, 5.4, 2.1]], np.float32)
np.save(sys.argv[2] + "/flowers.npy", flowers)
print("scikit-learn predicts:", clf.predict(flowers).tolist(), "(0=setosa, 1=versicolor, 2=virginica)")
PY
echo
"$build/vigil" inspect "$demo/iris_rf.onnx"
echo
echo "vigil run on the same three flowers:"
"$build/vigil" run "$demo/iris_rf.onnx" --input "input=$demo/flowers.npy"
