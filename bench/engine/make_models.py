"""Builds the engine benchmark's models and input batches.

Usage: /usr/bin/python3 make_models.py OUT_DIR [--rows N]

Models (exported with tests/fixtures/sklearn_export.py, probabilities as a plain tensor, no ZipMap):
  rf100_iris     RandomForestClassifier(100 trees) on iris (4 features, 3 classes)
  rf500_iris     RandomForestClassifier(500 trees) on iris
  gb300_cancer   GradientBoostingClassifier(300 trees, depth 3) on breast_cancer (30 features)
  mlp_784        MLPClassifier(hidden_layer_sizes=(256,)) on synthetic 784-feature data, 10 classes
  identity       Identity on float [N, 4]: not a benchmark row, it measures each runtime's fixed
                 cost per call (for ONNX Runtime under node: the N-API crossing and output arrays)
For each, OUT_DIR/<name>.onnx and OUT_DIR/<name>.npy: a float32 [N, F] batch (default 10,000 rows)
of data-set rows resampled with a little noise, so that trees take varied paths, and scikit-learn's
answers for it: OUT_DIR/<name>.sklearn.{label,probabilities}.npy. The single-row
timings cycle through the first rows of the same batch. OUT_DIR/models.json lists them.
Models are rebuilt only when missing or when this script or the exporter changed.
"""

import argparse
import hashlib
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures"))
import sklearn_export  # noqa: E402
from model_cache import build_models  # noqa: E402

from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


def resample(x, rows, rng):
    """Rows drawn from x with Gaussian noise of 5% of each feature's spread."""
    idx = rng.integers(0, len(x), rows)
    noise = rng.standard_normal((rows, x.shape[1])) * (0.05 * x.std(axis=0))
    return (x[idx] + noise).astype(np.float32)


def synthetic_digits(rows, rng):
    """784 features in [0, 1], 10 classes separated by class-specific mean images."""
    centers = rng.random((10, 784))
    y = rng.integers(0, 10, rows)
    x = np.clip(centers[y] + 0.3 * rng.standard_normal((rows, 784)), 0, 1)
    return x.astype(np.float32), y


def identity_model(path):
    """float [N, 4] -> Identity: measures a runtime's fixed cost per call, not a benchmark row."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, path)


def build(name, out, rows, rng):
    if name == "identity":
        identity_model(os.path.join(out, name + ".onnx"))
        x, _ = load_iris(return_X_y=True)
        batch = resample(x, rows, rng)
    elif name.endswith("_iris"):
        x, y = load_iris(return_X_y=True)
        est = RandomForestClassifier(n_estimators=int(name[2:5]), random_state=0, n_jobs=1)
        est.fit(x, y)
        batch = resample(x, rows, rng)
    elif name == "gb300_cancer":
        x, y = load_breast_cancer(return_X_y=True)
        est = GradientBoostingClassifier(n_estimators=300, max_depth=3, random_state=0)
        est.fit(x, y)
        batch = resample(x, rows, rng)
    elif name == "mlp_784":
        x, y = synthetic_digits(2000, rng)
        est = MLPClassifier(hidden_layer_sizes=(256,), max_iter=5, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(x, y)
        batch, _ = synthetic_digits(rows, rng)
    else:
        raise ValueError(name)
    n_features = batch.shape[1]
    np.save(os.path.join(out, name + ".npy"), batch)
    entry = {"name": name, "model": name + ".onnx", "batch": name + ".npy", "input": "input",
             "features": n_features, "rows": rows}
    if name == "identity":
        return entry
    sklearn_export.save(sklearn_export.to_onnx(est, n_features, zipmap=False),
                        os.path.join(out, name + ".onnx"))
    # scikit-learn's own answers: the reference both engines are checked against.
    np.save(os.path.join(out, name + ".sklearn.probabilities.npy"), est.predict_proba(batch))
    np.save(os.path.join(out, name + ".sklearn.label.npy"), est.predict(batch).astype(np.int64))
    return entry


def source_hash():
    """Models are rebuilt when this script or the exporter changes."""
    h = hashlib.sha1()
    for f in (__file__, sklearn_export.__file__):
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


MODELS = ["rf100_iris", "rf500_iris", "gb300_cancer", "mlp_784", "identity"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=10000)
    args = ap.parse_args()
    src = source_hash()
    build_models(args.out, MODELS, args.rows, lambda name: src,
                 lambda i, name: build(name, args.out, args.rows,
                                       np.random.default_rng(1000 + i)))


if __name__ == "__main__":
    main()
