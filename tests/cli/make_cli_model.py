"""Builds the small models, input files and expected values that tests/cli/test_cli.sh uses.

Usage: /usr/bin/python3 make_cli_model.py OUT_DIR

Writes into OUT_DIR:
  linear.onnx      inputs X float [N, 4] and Z float [3]; W = Mul(W0, 2) (a constant the engine
                   folds), Y = MatMul(X, W) + Z (float [N, 3]), label = ArgMax(Y, axis 1) (int64 [N])
  X.npy X.pb Z.npy Z.pb   the same inputs as NumPy and TensorProto files
  X_nan.npy        X with a NaN and an infinity (their rows come out as null in JSON)
  X64.npy          X as float64 (wrong dtype for the model)
  expected.json    Y and label for X, Z computed with numpy
  bad.onnx         bytes that are not a model
  bad_npy/*.npy    malformed .npy files (truncated, lying headers, Fortran order, ...)
  forest.onnx      a 3-tree iris RandomForestClassifier exported with ZipMap, with
  iris.npy         4 iris rows and forest_expected.json (sklearn's predict_proba)
"""

import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def linear_model():
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Mul", ["W0", "two"], ["W"]),
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "Z"], ["Y"]),
        helper.make_node("ArgMax", ["Y"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "cli_linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("Z", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        [numpy_helper.from_array(w0, "W0"),
         numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="vigil-cli-test", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, w0 * np.float32(2)


def write_pb(arr, name, path):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(arr, name).SerializeToString())


def npy_bytes(descr, shape, data, fortran=False, version=1):
    """A .npy file written by hand, so the tests can make it lie."""
    if isinstance(shape, str):
        shape_txt = shape
    else:
        shape_txt = "(" + "".join("%d, " % d for d in shape).rstrip(" ")
        if len(shape) > 1:
            shape_txt = shape_txt.rstrip(",")
        shape_txt += ")"
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape_txt)
    pre = 10 if version == 1 else 12
    hdr += " " * ((64 - (pre + len(hdr) + 1) % 64) % 64) + "\n"
    if version == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr))
    else:
        head = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(hdr))
    return head + hdr.encode() + data


def bad_npys(out):
    d = os.path.join(out, "bad_npy")
    os.makedirs(d, exist_ok=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    good = npy_bytes("<f4", (2, 4), x.tobytes())
    cases = {
        "truncated_data": good[:-5],
        "truncated_header": good[:40],
        "extra_data": good + b"\0\0\0\0",
        "lying_shape": npy_bytes("<f4", (1000000, 4), x.tobytes()),
        "huge_shape": npy_bytes("<f4", (1 << 40, 1 << 30), x.tobytes()),
        "header_len_past_eof": b"\x93NUMPY\x02\x00" + struct.pack("<I", 0x7fffffff) + b"{",
        "bad_magic": b"\x93NUMPX\x01\x00" + good[8:],
        "fortran": npy_bytes("<f4", (2, 4), x.tobytes(), fortran=True),
        "big_endian": npy_bytes(">f4", (2, 4), x.byteswap().tobytes()),
        "object_dtype": npy_bytes("|O", (2,), b"\0" * 16),
        "garbage_header": b"\x93NUMPY\x01\x00" + struct.pack("<H", 6) + b"{{{{{\n",
        "negative_dim": npy_bytes("<f4", "(-2, 4)", x.tobytes()),
        "rank9": npy_bytes("<f4", "(1, 1, 1, 1, 1, 1, 1, 1, 1)", x.tobytes()[:4]),
        "unknown_key": npy_bytes("<f4", "(2, 4), 'extra': 1", x.tobytes()),
        "version9": b"\x93NUMPY\x09\x00" + good[8:],
        "empty": b"",
    }
    for name, data in cases.items():
        with open(os.path.join(d, name + ".npy"), "wb") as f:
            f.write(data)
    # Well-formed variants the reader must accept: version 2 and 3 headers, scalar shapes.
    with open(os.path.join(out, "X_v2.npy"), "wb") as f:
        f.write(npy_bytes("<f4", (2, 4), x.tobytes(), version=2))
    with open(os.path.join(out, "X_v3.npy"), "wb") as f:
        f.write(npy_bytes("<f4", (2, 4), x.tobytes(), version=3))


def forest(out):
    sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
    import sklearn_export
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    est = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y)
    sklearn_export.save(sklearn_export.to_onnx(est, 4, zipmap=True),
                        os.path.join(out, "forest.onnx"))
    rows = x[[0, 60, 120, 149]].astype(np.float32)
    np.save(os.path.join(out, "iris.npy"), rows)
    with open(os.path.join(out, "forest_expected.json"), "w") as f:
        json.dump({"label": est.predict(rows).tolist(),
                   "probabilities": est.predict_proba(rows).tolist()}, f)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model, w = linear_model()
    onnx.save(model, os.path.join(out, "linear.onnx"))

    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    z = np.array([0.5, -1.0, 0.25], np.float32)
    np.save(os.path.join(out, "X.npy"), x)
    np.save(os.path.join(out, "Z.npy"), z)
    np.save(os.path.join(out, "X64.npy"), x.astype(np.float64))
    write_pb(x, "X", os.path.join(out, "X.pb"))
    write_pb(z, "Z", os.path.join(out, "Z.pb"))
    xn = x.copy()
    xn[1, 2] = np.nan
    xn[3, 0] = np.inf
    np.save(os.path.join(out, "X_nan.npy"), xn)

    y = (x.astype(np.float64) @ w.astype(np.float64) + z).astype(np.float32)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"Y": y.tolist(), "label": y.argmax(axis=1).tolist()}, f)
    with open(os.path.join(out, "bad.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model\n" * 3)
    bad_npys(out)
    forest(out)


if __name__ == "__main__":
    main()
