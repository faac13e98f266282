"""Builds the vision half of the engine benchmark: CNN models, input images and references.

Usage: /usr/bin/python3 vision_models.py OUT_DIR [--rows N] [--layers FILE]

Models (batch 1, float32 input "input" [1, 3, 224, 224], output "output" [1, 1000]):
  resnet18, mobilenet_v2, efficientnet_b0, squeezenet1_1
      torchvision architectures with their own random initialisation (weights=None,
      torch.manual_seed(0)), eval mode, exported with torch.onnx.export at opset 13 (constant
      folding on, which folds BatchNormalization into the convolutions as every exporter does).
  int8_lite
      the int8 efficientnet-lite-shaped graph (QLinearConv depthwise and pointwise, QLinearAdd
      residuals, QLinearGlobalAveragePool, QLinearMatMul head) written by the quantization tests'
      generator (INT8_GENERATOR below); skipped with a message while it does not exist.
For each: OUT_DIR/<name>.onnx, OUT_DIR/<name>.npy (N different images, float32 [N, 3, 224, 224],
standard-normal pixels: the harnesses time batch-1 runs cycling through them) and, for the torch
models, torch's own answers OUT_DIR/<name>.torch.output.npy [N, 1000] (the reference both engines
are checked against). OUT_DIR/models.json lists them. A model is rebuilt only when this script,
the generator or torch's version changed (a stamp in OUT_DIR/<name>.json).

--layers FILE writes every Conv / QLinearConv of the models, one line per distinct layer shape,
in the format bench/engine/conv_backends.c reads (model name C H W K KH KW STRIDE PAD GROUP ACT Q
COUNT), with the activation that follows each Conv (Relu, Clip 0..6, Sigmoid*x) so that oneDNN can
fuse it as a post-op the way the engine fuses it at load time.
"""

import argparse
import hashlib
import importlib.util
import os
import sys

import numpy as np

from model_cache import build_models

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

TORCH_MODELS = ["resnet18", "mobilenet_v2", "efficientnet_b0", "squeezenet1_1"]
# Helper hook: the int8 generator (file, function(path) writing the model). See bench-results.
INT8_GENERATOR = os.environ.get("VG_INT8_GENERATOR", "")
MODELS = TORCH_MODELS + ["int8_lite"]
SIZE = 224


def find_int8_generator():
    """(path, function name) of the int8 lite generator, or None. VG_INT8_GENERATOR=FILE:FUNC
    overrides the default, tests/quant/make_graphs.py:build_effnet_lite (the quantization tests'
    generator: writes the model to a path, returns a float input [1, 3, 224, 224])."""
    if INT8_GENERATOR:
        path, _, func = INT8_GENERATOR.partition(":")
        return (path, func or "build_effnet_lite")
    cand = os.path.join(ROOT, "tests", "quant", "make_graphs.py")
    return (cand, "build_effnet_lite") if os.path.exists(cand) else None


def file_hash(h, path):
    with open(path, "rb") as f:
        h.update(f.read())


def stamp(name):
    h = hashlib.sha1()
    file_hash(h, __file__)
    if name == "int8_lite":
        gen = find_int8_generator()
        if gen:
            file_hash(h, gen[0])
            h.update(gen[1].encode())
    else:
        import torch
        import torchvision
        h.update(("%s %s" % (torch.__version__, torchvision.__version__)).encode())
    return h.hexdigest()


def images(rows, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, 3, SIZE, SIZE)).astype(np.float32)


def build_torch(name, out, rows):
    import torch
    import torchvision
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    # torchvision's initialisation leaves BatchNormalization's running statistics at mean 0,
    # variance 1: in eval mode the activations then shrink layer after layer (mobilenet_v2's
    # logits come out near 1e-15, efficientnet_b0's near 1e-20, denormal territory on the way)
    # and neither the timings nor the output comparison would mean anything. The statistics are
    # therefore set from a forward pass in training mode over a few images (cumulative average).
    bns = [mod for mod in model.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    if bns:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        with torch.no_grad():
            model(torch.from_numpy(images(8, 3)))
    model.eval()
    x = images(rows, 7)
    path = os.path.join(out, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(model, torch.from_numpy(x[:1]), path, opset_version=13,
                          input_names=["input"], output_names=["output"],
                          do_constant_folding=True)
        ref = np.concatenate([model(torch.from_numpy(x[i:i + 1])).numpy() for i in range(rows)])
    np.save(os.path.join(out, name + ".npy"), x)
    np.save(os.path.join(out, name + ".torch.output.npy"), ref.astype(np.float32))
    return {"name": name, "model": name + ".onnx", "batch": name + ".npy", "input": "input",
            "rows": rows, "kind": "vision", "reference": "torch"}


def build_int8(out, rows_wanted):
    gen = find_int8_generator()
    if not gen:
        return None
    spec = importlib.util.spec_from_file_location("vg_int8_gen", gen[0])
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(gen[0]))
    spec.loader.exec_module(mod)
    path = os.path.join(out, "int8_lite.onnx")
    x0 = getattr(mod, gen[1])(path)
    import onnx
    m = onnx.load(path)
    inp = m.graph.input[0]
    tt = inp.type.tensor_type
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in tt.shape.dim]
    if tt.elem_type != onnx.TensorProto.FLOAT:
        raise SystemExit("int8_lite: the benchmark harnesses feed float32 inputs; the generator's "
                         "input %s has elem_type %d" % (inp.name, tt.elem_type))
    # More images drawn the way the generator draws its own (its input quantization is calibrated
    # for them), when it exposes how: make_graphs.image(rng, h, w).
    rows = [np.asarray(x0, np.float32).reshape(dims)]
    rng = np.random.default_rng(11)
    for _ in range(rows_wanted - 1):
        if hasattr(mod, "image"):
            rows.append(np.asarray(mod.image(rng, dims[2], dims[3]), np.float32).reshape(dims))
        else:
            rows.append(rng.standard_normal(dims).astype(np.float32))
    x = np.concatenate(rows)
    np.save(os.path.join(out, "int8_lite.npy"), x)
    return {"name": "int8_lite", "model": "int8_lite.onnx", "batch": "int8_lite.npy",
            "input": inp.name, "rows": rows_wanted, "kind": "vision", "reference": None,
            "generator": "%s:%s" % (os.path.relpath(gen[0], ROOT), gen[1])}


# ---- conv layer list for conv_backends ---------------------------------------------------------

def conv_layers(name, path):
    """[(key, count)] for every Conv / QLinearConv in the model, grouped by shape."""
    import onnx
    from onnx import numpy_helper, shape_inference
    m = shape_inference.infer_shapes(onnx.load(path))
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:  # torch writes Clip bounds as Constant nodes, shared weights via Identity
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    # ONNX's shape inference stops at com.microsoft operators (QLinearAdd, ...): carry the
    # shapes through them and through the convolutions here.
    for n in m.graph.node:
        if not n.output or n.output[0] in shapes or not n.input or n.input[0] not in shapes:
            continue
        if n.op_type in ("Conv", "QLinearConv"):
            w = n.input[3 if n.op_type == "QLinearConv" else 1]
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if w in inits and len(shapes[n.input[0]]) == 4:
                kh, kw = inits[w].shape[2:]
                st = list(at.get("strides", [1, 1]))
                pd = list(at.get("pads", [0, 0, 0, 0]))
                _, _, h, wd = shapes[n.input[0]]
                shapes[n.output[0]] = [1, inits[w].shape[0], (h + pd[0] + pd[2] - kh) // st[0] + 1,
                                       (wd + pd[1] + pd[3] - kw) // st[1] + 1]
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearAdd", "QLinearMul",
                           "QLinearSigmoid", "QLinearLeakyRelu", "Relu", "Clip", "Add", "Mul",
                           "Sigmoid"):
            shapes[n.output[0]] = shapes[n.input[0]]
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    counts, order = {}, []
    for n in m.graph.node:
        if n.op_type not in ("Conv", "QLinearConv"):
            continue
        q = n.op_type == "QLinearConv"
        x, w = n.input[0], n.input[3 if q else 1]
        if x not in shapes or w not in inits or len(shapes[x]) != 4:
            print("vision_models: %s: skipping %s %s (unknown shape)" % (name, n.op_type, n.output[0]),
                  file=sys.stderr)
            continue
        at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        kh, kw = inits[w].shape[2:]
        strides = list(at.get("strides", [1, 1]))
        pads = list(at.get("pads", [0, 0, 0, 0]))
        group = at.get("group", 1)
        if strides[0] != strides[1] or len(set(pads)) != 1 or at.get("auto_pad", b"NOTSET") not in (
                b"NOTSET", "NOTSET") or set(at.get("dilations", [1, 1])) != {1}:
            print("vision_models: %s: skipping %s (asymmetric)" % (name, n.name), file=sys.stderr)
            continue
        act = "none"
        outs = consumers.get(n.output[0], [])
        if len(outs) >= 1 and not q:
            o = outs[0]
            if o.op_type == "Relu" and len(outs) == 1:
                act = "relu"
            elif o.op_type == "Clip" and len(outs) == 1:
                lo = inits.get(o.input[1]) if len(o.input) > 1 else None
                hi = inits.get(o.input[2]) if len(o.input) > 2 else None
                if lo is not None and hi is not None and float(lo) == 0 and float(hi) == 6:
                    act = "relu6"
            elif len(outs) == 2 and {c.op_type for c in outs} == {"Sigmoid", "Mul"}:
                act = "silu"
        c, h, wd = shapes[x][1:]
        k = inits[w].shape[0]
        key = (c, h, wd, k, kh, kw, strides[0], pads[0], group, act, int(q))
        if key not in counts:
            order.append(key)
        counts[key] = counts.get(key, 0) + 1
    return [(key, counts[key]) for key in order]


def layer_name(key):
    c, h, w, k, kh, kw, s, p, g, act, q = key
    kind = "dw" if g == c and g == k and g > 1 else ("g%d-" % g if g > 1 else "")
    return "%s%s%dx%d%s_%d->%d@%d" % ("q-" if q else "", kind, kh, kw, "/%d" % s if s > 1 else "", c,
                                       k, h)


def write_layers(manifest, out, path):
    with open(path, "w") as f:
        f.write("# model name C H W K KH KW STRIDE PAD GROUP ACT Q COUNT "
                "(bench/engine/vision_models.py)\n")
        for e in manifest:
            for key, count in conv_layers(e["name"], os.path.join(out, e["model"])):
                c, h, w, k, kh, kw, s, p, g, act, q = key
                f.write("%s %s %d %d %d %d %d %d %d %d %d %s %d %d\n" % (
                    e["name"], layer_name(key), c, h, w, k, kh, kw, s, p, g, act, q, count))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--layers")
    args = ap.parse_args()

    def build(i, name):
        if name != "int8_lite":
            return build_torch(name, args.out, args.rows)
        entry = build_int8(args.out, args.rows)
        if entry is None:
            print("vision_models: int8_lite skipped: no generator yet (tests/quant/; set "
                  "VG_INT8_GENERATOR=FILE:FUNCTION)", file=sys.stderr)
        return entry

    manifest = build_models(args.out, MODELS, args.rows, stamp, build)
    if args.layers:
        write_layers(manifest, args.out, args.layers)


if __name__ == "__main__":
    main()
