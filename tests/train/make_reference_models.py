"""Builds the "imported" models that tests/train/test_reference.sh gives to `vigil reference`.

Usage: /usr/bin/python3 make_reference_models.py SOURCE_DIR OUT_DIR

scikit-learn models exported to ONNX with tests/fixtures/sklearn_export.py (skl2onnx is not in
Debian), each with a hand-written config.json that has no "reference", as a model trained
outside vigil would arrive. Writes into OUT_DIR:

  repo/imported/1          StandardScaler + LogisticRegression on iris; features listed in
                           another order than the CSV's columns; outputs label (strings) and
                           probabilities as a ZipMap (sequence of maps)
  repo/imported_argmax/1   the same model, config.json listing only the probabilities output
                           (the class is then their argmax)
  repo/imported_int/1      DecisionTreeClassifier on iris with integer classes 0, 1, 2: an INT64
                           label output
  repo/imported_reg/1      LinearRegression on reg.csv: a regressor ("value" output)
  reg.csv                  the regression data (x1, x2, x3, y)
  iris_x.npy               data/iris.csv's features, float32 [150, 4], in file order
  expected.json            per model: scikit-learn's predicted class counts on the rows
                           (classifiers), MAE on reg.csv (the regressor)
"""

import csv
import json
import os
import sys

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

SRC, OUT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SRC, "tests", "fixtures"))
import sklearn_export  # noqa: E402

CSV_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def read_iris():
    with open(os.path.join(SRC, "data", "iris.csv")) as f:
        rows = list(csv.DictReader(f))
    return rows


def tensor(name, datatype, shape):
    return {"name": name, "datatype": datatype, "shape": shape}


def write_model(name, model, config):
    d = os.path.join(OUT, "repo", name, "1")
    os.makedirs(d, exist_ok=True)
    sklearn_export.save(model, os.path.join(d, "model.onnx"))
    # Written by hand, as an importer would: 2-space indent, keys in its own order.
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def classifier_config(name, features, classes, label_type, outputs, producer):
    out = {}
    if "label" in outputs:
        out["label"] = tensor("label", label_type, [-1])
    if "probabilities" in outputs:
        out["probabilities"] = tensor("probabilities", "FP32", [-1, len(classes)])
    return {
        "schema_version": 1,
        "name": name,
        "version": 1,
        "description": "imported from scikit-learn (%s)" % producer,
        "task": "classification",
        "platform": "onnx",
        "model_file": "model.onnx",
        "input": tensor("input", "FP32", [-1, len(features)]),
        "features": features,
        "outputs": out,
        "classes": classes,
        "training": {"source": "scikit-learn", "estimator": producer},
        "metrics": None,
    }


def counts(pred, classes):
    return {c: int(sum(1 for p in pred if p == c)) for c in classes}


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = read_iris()
    species = [r["species"] for r in rows]
    x_csv = np.array([[float(r[f]) for f in CSV_FEATURES] for r in rows], dtype=np.float32)
    np.save(os.path.join(OUT, "iris_x.npy"), x_csv)
    expected = {}

    # A logistic regression whose config lists the features in another order than the CSV.
    order = ["petal_width", "sepal_length", "petal_length", "sepal_width"]
    x = np.array([[float(r[f]) for f in order] for r in rows], dtype=np.float32)
    logreg = Pipeline([("scale", StandardScaler()),
                       ("model", LogisticRegression(max_iter=1000))]).fit(x, species)
    classes = [str(c) for c in logreg.classes_]
    model = sklearn_export.to_onnx(logreg, len(order), zipmap=True, name="imported")
    write_model("imported", model,
                classifier_config("imported", order, classes, "BYTES", ["label", "probabilities"],
                                  "LogisticRegression"))
    write_model("imported_argmax", model,
                classifier_config("imported_argmax", order, classes, "BYTES", ["probabilities"],
                                  "LogisticRegression"))
    pred = [str(p) for p in logreg.predict(x)]
    expected["imported"] = {"counts": counts(pred, classes), "rows": len(rows),
                            "accuracy": float(np.mean([p == s for p, s in zip(pred, species)]))}

    # Integer classes: an INT64 label output.
    codes = {"setosa": 0, "versicolor": 1, "virginica": 2}
    y_int = np.array([codes[s] for s in species], dtype=np.int64)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x_csv, y_int)
    int_classes = [str(int(c)) for c in tree.classes_]
    model = sklearn_export.to_onnx(tree, 4, name="imported_int")
    write_model("imported_int", model,
                classifier_config("imported_int", CSV_FEATURES, int_classes, "INT64",
                                  ["label", "probabilities"], "DecisionTreeClassifier"))
    expected["imported_int"] = {
        "counts": counts([str(int(p)) for p in tree.predict(x_csv)], int_classes)}

    # A regressor on generated data.
    rng = np.random.default_rng(11)
    xr = rng.normal(size=(300, 3)).astype(np.float32)
    yr = 2.0 * xr[:, 0] - 0.5 * xr[:, 1] + 0.25 * xr[:, 2] + rng.normal(scale=0.1, size=300)
    with open(os.path.join(OUT, "reg.csv"), "w") as f:
        f.write("x1,x2,x3,y\n")
        for a, y in zip(xr, yr):
            f.write("%.9g,%.9g,%.9g,%.9g\n" % (a[0], a[1], a[2], y))
    xr = np.array([[float("%.9g" % v) for v in a] for a in xr], dtype=np.float32)
    yr = np.array([float("%.9g" % v) for v in yr])
    lin = LinearRegression().fit(xr, yr)
    model = sklearn_export.to_onnx(lin, 3, name="imported_reg")
    write_model("imported_reg", model, {
        "schema_version": 1, "name": "imported_reg", "version": 1, "description": "",
        "task": "regression", "platform": "onnx", "model_file": "model.onnx",
        "input": tensor("input", "FP32", [-1, 3]), "features": ["x1", "x2", "x3"],
        "outputs": {"value": tensor("variable", "FP32", [-1, 1])}, "classes": []})
    expected["imported_reg"] = {"mae": float(np.mean(np.abs(lin.predict(xr) - yr)))}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


main()
