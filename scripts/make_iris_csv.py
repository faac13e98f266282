#!/usr/bin/env python3
"""Writes data/iris.csv, the 150-row Iris data set, from scikit-learn's bundled copy.

Run once with /usr/bin/python3 (Debian python3-sklearn); the CSV is committed, so builds and tests
do not need scikit-learn. Values are written with the one decimal the data set has.

Usage: /usr/bin/python3 scripts/make_iris_csv.py [OUTPUT]   (default: data/iris.csv)
"""
import os
import sys

from sklearn.datasets import load_iris


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data", "iris.csv")
    iris = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    with open(out, "w", newline="") as f:
        f.write(",".join(names) + "\n")
        for row, label in zip(iris.data, iris.target):
            cells = ["%.1f" % v for v in row] + [str(iris.target_names[label])]
            f.write(",".join(cells) + "\n")


if __name__ == "__main__":
    main()
