#!/usr/bin/python3
"""Builds the int8 graphs that tests/quant checks against ONNX Runtime (see README.md).

Usage: /usr/bin/python3 tests/quant/make_graphs.py DIR
       /usr/bin/python3 tests/quant/make_graphs.py split DIR/effnet_all DIR/layers

The first form writes DIR/graphs/test_<name>/model.onnx (DIR/end_to_end/ for the
efficientnet-lite graph) and test_data_set_0/input_0.pb (fixed seeds) for:
  qdq_cnn          a small static-quantized CNN in QDQ form (QuantizeLinear/DequantizeLinear
                   around float Conv, Relu, MaxPool, Gemm), int32 biases through DequantizeLinear
  qlinear_cnn      a CNN in QLinear form with the com.microsoft contrib operators (QLinearConv,
                   QLinearAdd, QLinearSigmoid, QLinearLeakyRelu, QLinearConcat,
                   QLinearAveragePool, QLinearMul, QLinearGlobalAveragePool, QLinearMatMul)
  effnet_lite_int8 an efficientnet-lite0-shaped int8 stack at 1x3x224x224 (stem 3x3/s2,
                   inverted-residual blocks: 1x1 expand, 3x3/5x5 depthwise at stride 1 and 2,
                   1x1 project, QLinearAdd residuals; ReLU6 folded into the output range as ONNX
                   Runtime's quantizer does; 1x1 head conv, QLinearGlobalAveragePool,
                   QLinearMatMul + QLinearAdd classifier to 1000 classes; uint8 activations,
                   int8 per-channel weights)
and DIR/graphs/test_u8s8_saturation/ (a one-pixel QLinearConv whose pairs of u8*s8 products exceed
int16, with the exact output as expected output: see README.md) marked by a file
`expected_is_exact`, so run_ort.js records ONNX Runtime's answer beside it instead.

It also writes DIR/effnet_all/: the efficientnet-lite graph with every node's output as a graph
output. After run_ort.js has recorded ONNX Runtime's outputs there, the second form cuts it into
one single-node case per layer (DIR/layers/test_effnet_layer_NNN_<op>/), whose inputs are ONNX
Runtime's own intermediate tensors.

Expected outputs are written by run_ort.js (ONNX Runtime). Every output is uint8, so the
comparison is "within N quantization steps".

Quantization parameters are calibrated the way ONNX Runtime's static quantizer's MinMax
calibration does, on the test input itself: the graph is evaluated layer by layer in numpy with
real arithmetic on the dequantized values, each output's [min(0, min), max(0, max)] range gives
its uint8 scale and zero point, and the next layer sees the quantized result. Weights are int8
symmetric per output channel, limited to [-63, 63] (7 bits, like the quantizer's reduce_range),
so that no pair of u8*s8 products exceeds int16: ONNX Runtime's AVX2 u8s8 kernel (vpmaddubsw)
saturates such pairs, which the exact result does not (test_u8s8_saturation shows it).

Importable: build_qdq_cnn(path), build_qlinear_cnn(path), build_effnet_lite(path, ...) write the
model (and return the input array); write_input(case_dir, name, array) writes a data set input.
bench/engine uses build_effnet_lite for its int8 row.
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

MS = "com.microsoft"
WMAX = 63  # int8 weight magnitude cap (see the module docstring)


# ---- numpy reference pieces (real arithmetic, NCHW, batch 1) ------------------------------------

def conv2d(x, w, b, stride, pad, group):
    """x [C,H,W] float64, w [Cout, Cin/group, kh, kw]; symmetric pad; returns [Cout, OH, OW]."""
    cin, h, wd = x.shape
    cout, cpg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((cout, oh, ow))
    if group == cin and cpg == 1 and cout == cin:  # depthwise
        for i in range(kh):
            for j in range(kw):
                out += w[:, 0, i, j][:, None, None] * \
                    xp[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
    elif group == 1:
        if kh == 1 and kw == 1 and pad == 0:
            cols = xp[:, ::stride, ::stride][:, :oh, :ow].reshape(cin, -1)
            out = (w.reshape(cout, cin) @ cols).reshape(cout, oh, ow)
        else:
            cols = np.empty((cin, kh, kw, oh, ow))
            for i in range(kh):
                for j in range(kw):
                    cols[:, i, j] = xp[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out = (w.reshape(cout, -1) @ cols.reshape(cin * kh * kw, -1)).reshape(cout, oh, ow)
    else:
        raise ValueError("grouped conv not used here")
    if b is not None:
        out += b[:, None, None]
    return out


def qparams(lo, hi):
    """uint8 asymmetric parameters of the range [min(0, lo), max(0, hi)] (ORT's quantizer)."""
    lo, hi = min(0.0, float(lo)), max(0.0, float(hi))
    if hi == lo:
        hi = lo + 1.0
    s = np.float32((hi - lo) / 255.0)
    z = int(np.clip(np.rint(-lo / np.float64(s)), 0, 255))
    return s, z


def quant(v, s, z):
    return np.clip(np.rint(v / np.float64(s)) + z, 0, 255).astype(np.uint8)


def deq(q, s, z):
    return (q.astype(np.float64) - z) * np.float64(s)


def quant_weights(w, per_channel=True):
    """int8 symmetric weights, |q| <= WMAX; per output channel (axis 0) or per tensor."""
    if per_channel:
        m = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        m[m == 0] = 1.0
        s = (m / WMAX).astype(np.float32)
        q = np.clip(np.rint(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -WMAX, WMAX)
    else:
        m = float(np.abs(w).max()) or 1.0
        s = np.float32(m / WMAX)
        q = np.clip(np.rint(w / s), -WMAX, WMAX)
    return q.astype(np.int8), s


# ---- graph builder -------------------------------------------------------------------------------

class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return "%s_%d" % (base, self.n)

    def const(self, base, arr):
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op, ins, base, domain=None, **attrs):
        out = self.name(base)
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, ins, [out], **kw, **attrs))
        return out

    def save(self, path, inputs, outputs, contrib):
        graph = helper.make_graph(self.nodes, os.path.basename(os.path.dirname(path)) or "g",
                                  inputs, outputs, self.inits)
        ops = [helper.make_opsetid("", 13)]
        if contrib:
            ops.append(helper.make_opsetid(MS, 1))
        model = helper.make_model(graph, opset_imports=ops, producer_name="vigil-tests-quant")
        model.ir_version = 7
        if not contrib:
            onnx.checker.check_model(model)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        onnx.save(model, path)


# A quantized activation flowing through the builder: value name, uint8 data, scale, zero point.
class QT:
    def __init__(self, name, q, s, z):
        self.name, self.q, self.s, self.z = name, q, s, z

    def real(self):
        return deq(self.q, self.s, self.z)


def qlinear_conv(g, x, w, b, stride, pad, group, act=None, force_range=None):
    """QLinearConv with per-channel int8 weights and int32 bias; act 'relu' or 'relu6' folds into
    the output range (zero point 0). Returns the output QT."""
    wq, ws = quant_weights(w)
    bq = np.rint(b / (np.float64(x.s) * ws.astype(np.float64))).astype(np.int32)
    real = conv2d(x.real()[0], wq.astype(np.float64) * ws.astype(np.float64)[:, None, None, None],
                  bq * (np.float64(x.s) * ws.astype(np.float64)), stride, pad, group)[None]
    lo, hi = real.min(), real.max()
    if act == "relu":
        lo = 0.0
    elif act == "relu6":
        lo, hi = 0.0, min(6.0, hi)
    if force_range:
        lo, hi = force_range
    s, z = qparams(lo, hi)
    k = w.shape[2]
    attrs = {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [pad] * 4}
    if group > 1:
        attrs["group"] = group
    ins = [x.name, g.const("xs", np.float32(x.s)), g.const("xz", np.uint8(x.z)),
           g.const("w", wq), g.const("ws", ws), g.const("wz", np.zeros(ws.shape, np.int8)),
           g.const("ys", np.float32(s)), g.const("yz", np.uint8(z)), g.const("b", bq)]
    out = g.node("QLinearConv", ins, "conv", **attrs)
    return QT(out, quant(real, s, z), s, z)


def qlinear_add(g, a, b):
    real = a.real() + b.real()
    s, z = qparams(real.min(), real.max())
    ins = [a.name, g.const("as", np.float32(a.s)), g.const("az", np.uint8(a.z)),
           b.name, g.const("bs", np.float32(b.s)), g.const("bz", np.uint8(b.z)),
           g.const("cs", np.float32(s)), g.const("cz", np.uint8(z))]
    return QT(g.node("QLinearAdd", ins, "add", domain=MS), quant(real, s, z), s, z)


def qparams_in(g, x):
    return [g.const("xs", np.float32(x.s)), g.const("xz", np.uint8(x.z))]


def he(rng, shape, fan_in, gain=1.0):
    return rng.standard_normal(shape) * (gain * np.sqrt(2.0 / fan_in))


def quantize_input(g, x_float, name="x"):
    s, z = qparams(x_float.min(), x_float.max())
    q = g.node("QuantizeLinear", [name, g.const("s", np.float32(s)), g.const("z", np.uint8(z))],
               "xq")
    return QT(q, quant(x_float.astype(np.float64), s, z), s, z)


def classifier(g, x, rng, n_in, n_out):
    """x: QT [1, n_in] -> QLinearMatMul (per-tensor int8 weights) -> QLinearAdd (uint8 bias)."""
    w = he(rng, (n_in, n_out), n_in)
    wq, ws = quant_weights(w, per_channel=False)
    real = x.real().reshape(1, n_in) @ (wq.astype(np.float64) * np.float64(ws))
    s, z = qparams(real.min(), real.max())
    mm = g.node("QLinearMatMul", [x.name] + qparams_in(g, x) +
                [g.const("w", wq), g.const("ws", np.float32(ws)), g.const("wz", np.int8(0)),
                 g.const("ys", np.float32(s)), g.const("yz", np.uint8(z))], "mm")
    y = QT(mm, quant(real, s, z), s, z)
    bias = rng.standard_normal(n_out) * 0.1
    bs, bz = qparams(bias.min(), bias.max())
    bt = QT(g.const("bias", quant(bias, bs, bz)), quant(bias, bs, bz), bs, bz)
    return qlinear_add(g, y, bt)


def write_input(case_dir, name, arr, idx=0):
    ds = os.path.join(case_dir, "test_data_set_0")
    os.makedirs(ds, exist_ok=True)
    with open(os.path.join(ds, "input_%d.pb" % idx), "wb") as f:
        f.write(numpy_helper.from_array(arr, name).SerializeToString())


def image(rng, h, w):
    """A smooth synthetic image in [-1, 1] (so that pools and convs see structure)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(6.0 * xx + 2.0 * c) * np.cos(4.0 * yy - c) for c in range(3)]
    img = np.stack(chans)[None] * 0.8 + rng.standard_normal((1, 3, h, w)) * 0.2
    return np.clip(img, -1, 1).astype(np.float32)


# ---- (1) QDQ CNN ----------------------------------------------------------------------------------

def build_qdq_cnn(path, seed=7):
    rng = np.random.default_rng(seed)
    x = image(rng, 32, 32)
    g = G()

    def qdq(name, real):
        s, z = qparams(real.min(), real.max())
        q = g.node("QuantizeLinear", [name, g.const("s", np.float32(s)),
                                      g.const("z", np.uint8(z))], "q")
        d = g.node("DequantizeLinear", [q, g.const("s", np.float32(s)),
                                        g.const("z", np.uint8(z))], "dq")
        return d, deq(quant(real, s, z), s, z)

    def conv(name, xr, cin, cout, k, stride, pad):
        w = he(rng, (cout, cin, k, k), cin * k * k)
        b = rng.standard_normal(cout) * 0.05
        wq, ws = quant_weights(w)
        xs = np.float32(float(np.abs(xr).max()) / 255 or 1.0)  # only for the bias scale below
        # Bias as int32 with scale x_scale * w_scale, through DequantizeLinear (the quantizer's form).
        in_s = qdq_scales[name]
        bsc = (np.float64(in_s) * ws.astype(np.float64)).astype(np.float32)
        bq = np.rint(b / bsc.astype(np.float64)).astype(np.int32)
        del xs
        wd = g.node("DequantizeLinear", [g.const("w", wq), g.const("ws", ws),
                                         g.const("wz", np.zeros(cout, np.int8))], "wdq", axis=0)
        bd = g.node("DequantizeLinear", [g.const("b", bq), g.const("bs", bsc),
                                         g.const("bz", np.zeros(cout, np.int32))], "bdq", axis=0)
        out = g.node("Conv", [name, wd, bd], "conv", kernel_shape=[k, k], strides=[stride] * 2,
                     pads=[pad] * 4)
        real = conv2d(xr[0], wq.astype(np.float64) * ws.astype(np.float64)[:, None, None, None],
                      bq * bsc.astype(np.float64), stride, pad, 1)[None]
        return out, real

    qdq_scales = {}
    d0, r0 = qdq("x", x.astype(np.float64))
    qdq_scales[d0] = qparams(x.min(), x.max())[0]
    c1, r1 = conv(d0, r0, 3, 16, 3, 1, 1)
    a1 = g.node("Relu", [c1], "relu")
    r1 = np.maximum(r1, 0)
    d1, r1 = qdq(a1, r1)
    p1 = g.node("MaxPool", [d1], "pool", kernel_shape=[2, 2], strides=[2, 2])
    r1 = r1.reshape(1, 16, 16, 2, 16, 2).max(axis=(3, 5))
    d2, r2 = qdq(p1, r1)
    qdq_scales[d2] = qparams(r1.min(), r1.max())[0]
    c2, r3 = conv(d2, r2, 16, 32, 3, 2, 1)
    a2 = g.node("Relu", [c2], "relu")
    r3 = np.maximum(r3, 0)
    d3, r3 = qdq(a2, r3)
    f = g.node("Flatten", [d3], "flat")
    r3 = r3.reshape(1, -1)
    d4, r4 = qdq(f, r3)
    n_in = r4.shape[1]
    w = he(rng, (10, n_in), n_in)
    b = rng.standard_normal(10) * 0.05
    wq, ws = quant_weights(w, per_channel=False)
    in_s = qparams(r3.min(), r3.max())[0]
    bsc = np.float32(np.float64(in_s) * np.float64(ws))
    bq = np.rint(b / np.float64(bsc)).astype(np.int32)
    wd = g.node("DequantizeLinear", [g.const("w", wq), g.const("ws", np.float32(ws)),
                                     g.const("wz", np.int8(0))], "wdq")
    bd = g.node("DequantizeLinear", [g.const("b", bq), g.const("bs", bsc),
                                     g.const("bz", np.int32(0))], "bdq")
    gm = g.node("Gemm", [d4, wd, bd], "gemm", transB=1)
    real = r4 @ (wq.astype(np.float64) * np.float64(ws)).T + bq * np.float64(bsc)
    s, z = qparams(real.min(), real.max())
    g.nodes.append(helper.make_node("QuantizeLinear", [gm, g.const("s", np.float32(s)),
                                                       g.const("z", np.uint8(z))], ["y"]))
    g.save(path, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
           [helper.make_tensor_value_info("y", TensorProto.UINT8, (1, 10))], contrib=False)
    return x


# ---- (2) QLinear CNN ------------------------------------------------------------------------------

def build_qlinear_cnn(path, seed=11):
    rng = np.random.default_rng(seed)
    x = image(rng, 32, 32)
    g = G()
    xq = quantize_input(g, x)
    a = qlinear_conv(g, xq, he(rng, (16, 3, 3, 3), 27), rng.standard_normal(16) * 0.05, 1, 1, 1,
                     act="relu")
    a = qlinear_conv(g, a, he(rng, (16, 16, 3, 3), 144), rng.standard_normal(16) * 0.05, 2, 1, 1,
                     act="relu")
    b = qlinear_conv(g, a, he(rng, (16, 16, 1, 1), 16), rng.standard_normal(16) * 0.05, 1, 0, 1)
    c = qlinear_add(g, a, b)
    # Sigmoid and LeakyRelu branches, concatenated with their own parameters.
    sig_real = 1.0 / (1.0 + np.exp(-c.real()))
    ss, sz = np.float32(1.0 / 256), 0
    d = QT(g.node("QLinearSigmoid", [c.name] + qparams_in(g, c) +
                  [g.const("ys", ss), g.const("yz", np.uint8(sz))], "sig", domain=MS),
           quant(sig_real, ss, sz), ss, sz)
    lr = c.real()
    lr = np.where(lr >= 0, lr, np.float64(np.float32(0.1)) * lr)
    ls, lz = qparams(lr.min(), lr.max())
    e = QT(g.node("QLinearLeakyRelu", [c.name] + qparams_in(g, c) +
                  [g.const("ys", np.float32(ls)), g.const("yz", np.uint8(lz))], "lrelu",
                  domain=MS, alpha=0.1), quant(lr, ls, lz), ls, lz)
    cat_real = np.concatenate([d.real(), e.real()], axis=1)
    cs, cz = qparams(cat_real.min(), cat_real.max())
    f = QT(g.node("QLinearConcat", [g.const("ys", np.float32(cs)), g.const("yz", np.uint8(cz)),
                                    d.name] + qparams_in(g, d) + [e.name] + qparams_in(g, e),
                  "cat", domain=MS, axis=1), quant(cat_real, cs, cz), cs, cz)
    # 3x3/s2 average pool with padding, pads excluded from the count.
    fr = np.pad(f.real()[0], ((0, 0), (1, 1), (1, 1)))
    ones = np.pad(np.ones(f.q.shape[2:]), 1)
    oh = (f.q.shape[2] + 2 - 3) // 2 + 1
    ssum = np.zeros((fr.shape[0], oh, oh))
    cnt = np.zeros((oh, oh))
    for i in range(3):
        for j in range(3):
            ssum += fr[:, i:i + 2 * oh:2, j:j + 2 * oh:2]
            cnt += ones[i:i + 2 * oh:2, j:j + 2 * oh:2]
    pr = (ssum / cnt)[None]
    ps, pz = qparams(pr.min(), pr.max())
    p = QT(g.node("QLinearAveragePool", [f.name] + qparams_in(g, f) +
                  [g.const("ys", np.float32(ps)), g.const("yz", np.uint8(pz))], "apool",
                  domain=MS, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
           quant(pr, ps, pz), ps, pz)
    h = qlinear_conv(g, p, he(rng, (24, 32, 1, 1), 32), rng.standard_normal(24) * 0.05, 1, 0, 1)
    mr = h.real() * h.real()
    ms, mz = qparams(mr.min(), mr.max())
    m = QT(g.node("QLinearMul", [h.name] + qparams_in(g, h) + [h.name] + qparams_in(g, h) +
                  [g.const("ys", np.float32(ms)), g.const("yz", np.uint8(mz))], "mul", domain=MS),
           quant(mr, ms, mz), ms, mz)
    gr = m.real().mean(axis=(2, 3), keepdims=True)
    gs, gz = qparams(gr.min(), gr.max())
    gp = QT(g.node("QLinearGlobalAveragePool", [m.name] + qparams_in(g, m) +
                   [g.const("ys", np.float32(gs)), g.const("yz", np.uint8(gz))], "gap",
                   domain=MS), quant(gr, gs, gz), gs, gz)
    flat = g.node("Reshape", [gp.name, g.const("shape", np.array([1, 24], np.int64))], "flat")
    y = classifier(g, QT(flat, gp.q.reshape(1, 24), gs, gz), rng, 24, 10)
    g.nodes[-1].output[0] = "y"
    g.save(path, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
           [helper.make_tensor_value_info("y", TensorProto.UINT8, (1, 10))], contrib=True)
    del y
    return x


# ---- (3) efficientnet-lite-shaped int8 stack --------------------------------------------------------

# (expand ratio, kernel, stride, output channels, repeats): EfficientNet-B0's stages, which
# EfficientNet-lite keeps (lite drops squeeze-and-excitation and uses ReLU6).
LITE_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
               (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def _round_ch(c, mult):
    v = max(8, int(c * mult + 4) // 8 * 8)
    if v < 0.9 * c * mult:
        v += 8
    return v


def build_effnet_lite(path, seed=3, size=224, width_mult=1.0, depth_mult=1.0, classes=1000):
    """Writes the efficientnet-lite-shaped int8 model to `path` and returns its float input
    [1, 3, size, size]. width_mult/depth_mult 1.0/1.0 is lite0's shape; lite4 is 1.4/1.8 (the
    stem and head stay at 32 and 1280 channels, as in lite)."""
    rng = np.random.default_rng(seed)
    x = image(rng, size, size)
    g = G()
    t = quantize_input(g, x)
    t = qlinear_conv(g, t, he(rng, (32, 3, 3, 3), 27), rng.standard_normal(32) * 0.05, 2, 1, 1,
                     act="relu6")
    cin = 32
    for i, (e, k, s, c, n) in enumerate(LITE_STAGES):
        cout = _round_ch(c, width_mult)
        reps = n if i in (0, len(LITE_STAGES) - 1) else int(np.ceil(n * depth_mult))
        for r in range(reps):
            stride = s if r == 0 else 1
            inp = t
            mid = cin * e
            if e != 1:
                t = qlinear_conv(g, t, he(rng, (mid, cin, 1, 1), cin),
                                 rng.standard_normal(mid) * 0.05, 1, 0, 1, act="relu6")
            t = qlinear_conv(g, t, he(rng, (mid, 1, k, k), k * k), rng.standard_normal(mid) * 0.05,
                             stride, k // 2, mid, act="relu6")
            t = qlinear_conv(g, t, he(rng, (cout, mid, 1, 1), mid, gain=0.5),
                             rng.standard_normal(cout) * 0.05, 1, 0, 1)
            if stride == 1 and cin == cout:
                t = qlinear_add(g, t, inp)
            cin = cout
    t = qlinear_conv(g, t, he(rng, (1280, cin, 1, 1), cin), rng.standard_normal(1280) * 0.05,
                     1, 0, 1, act="relu6")
    gr = t.real().mean(axis=(2, 3), keepdims=True)
    gs, gz = qparams(gr.min(), gr.max())
    gp = QT(g.node("QLinearGlobalAveragePool", [t.name] + qparams_in(g, t) +
                   [g.const("ys", np.float32(gs)), g.const("yz", np.uint8(gz))], "gap",
                   domain=MS), quant(gr, gs, gz), gs, gz)
    flat = g.node("Reshape", [gp.name, g.const("shape", np.array([1, 1280], np.int64))], "flat")
    classifier(g, QT(flat, gp.q.reshape(1, 1280), gs, gz), rng, 1280, classes)
    g.nodes[-1].output[0] = "y"
    g.save(path, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
           [helper.make_tensor_value_info("y", TensorProto.UINT8, (1, classes))], contrib=True)
    return x


# ---- the u8s8 saturation case ----------------------------------------------------------------------

def build_u8s8_saturation(case_dir):
    """One output pixel of a 1x1 QLinearConv over 4 input channels, x = 255 and w = 127 in every
    channel: each pair of products is 2 * 255 * 127 = 64770, beyond int16 (32767). Exact:
    acc = 4 * 255 * 127 = 129540, y = round(129540 * (1 * 1 / 1024)) = 127 (126.5039 -> 127).
    With vpmaddubsw's saturation: 2 * 32767 = 65534 -> round(63.998) = 64."""
    g = G()
    w = np.full((1, 4, 1, 1), 127, np.int8)
    ins = ["x", g.const("xs", np.float32(1.0)), g.const("xz", np.uint8(0)), g.const("w", w),
           g.const("ws", np.array([1.0], np.float32)), g.const("wz", np.array([0], np.int8)),
           g.const("ys", np.float32(1024.0)), g.const("yz", np.uint8(0))]
    g.nodes.append(helper.make_node("QLinearConv", ins, ["y"], kernel_shape=[1, 1]))
    x = np.full((1, 4, 1, 1), 255, np.uint8)
    path = os.path.join(case_dir, "model.onnx")
    g.save(path, [helper.make_tensor_value_info("x", TensorProto.UINT8, x.shape)],
           [helper.make_tensor_value_info("y", TensorProto.UINT8, (1, 1, 1, 1))], contrib=False)
    write_input(case_dir, "x", x)
    exact = np.array(4 * 255 * 127, np.float64) / 1024.0
    y = np.clip(np.rint(exact), 0, 255).astype(np.uint8).reshape(1, 1, 1, 1)
    with open(os.path.join(case_dir, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, "y").SerializeToString())
    with open(os.path.join(case_dir, "expected_is_exact"), "w") as f:
        f.write("output_0.pb is the exact result; run_ort.js writes ONNX Runtime's beside it as "
                "ort_output_0.pb\n")


# ---- per-layer cases ---------------------------------------------------------------------------------

def write_all_outputs(model_path, case_dir):
    """The model with every node's output as a graph output, so that ONNX Runtime records every
    intermediate tensor (written to case_dir, with the model's input)."""
    m = onnx.load(model_path)
    del m.graph.output[:]
    for n in m.graph.node:
        m.graph.output.append(helper.make_tensor_value_info(n.output[0], TensorProto.UINT8, None))
    os.makedirs(case_dir, exist_ok=True)
    onnx.save(m, os.path.join(case_dir, "model.onnx"))


def split_layers(all_dir, out_dir, prefix):
    """One single-node case per node of all_dir's model: its activation inputs are ONNX Runtime's
    intermediate tensors (all_dir's output_N.pb), its initializers are copied, and its expected
    output is ONNX Runtime's. A difference of one step in one layer then cannot grow through the
    following layers (see README.md)."""
    m = onnx.load(os.path.join(all_dir, "model.onnx"))
    ds = os.path.join(all_dir, "test_data_set_0")
    inits = {t.name: t for t in m.graph.initializer}
    values = {}
    for i, o in enumerate(m.graph.output):
        values[o.name] = os.path.join(ds, "output_%d.pb" % i)
    for i, gi in enumerate(m.graph.input):
        values[gi.name] = os.path.join(ds, "input_%d.pb" % i)
    for k, n in enumerate(m.graph.node):
        d = os.path.join(out_dir, "test_%s_%03d_%s" % (prefix, k, n.op_type.lower()))
        os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
        g_inputs, g_inits, feeds = [], [], []
        for name in n.input:
            if not name:
                continue
            if name in inits:
                if all(t.name != name for t in g_inits):
                    g_inits.append(inits[name])
                continue
            t = onnx.load_tensor(values[name])
            if any(f[0] == name for f in feeds):
                continue
            g_inputs.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
            feeds.append((name, values[name]))
        out = onnx.load_tensor(values[n.output[0]])
        graph = helper.make_graph([n], "layer", g_inputs,
                                  [helper.make_tensor_value_info(n.output[0], out.data_type,
                                                                 list(out.dims))], g_inits)
        model = helper.make_model(graph, opset_imports=list(m.opset_import),
                                  producer_name="vigil-tests-quant")
        model.ir_version = 7
        onnx.save(model, os.path.join(d, "model.onnx"))
        for i, (name, src) in enumerate(feeds):
            t = onnx.load_tensor(src)
            t.name = name
            onnx.save_tensor(t, os.path.join(d, "test_data_set_0", "input_%d.pb" % i))
        out.name = n.output[0]
        onnx.save_tensor(out, os.path.join(d, "test_data_set_0", "output_0.pb"))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "split":
        split_layers(sys.argv[2], sys.argv[3], "effnet_layer")
        return 0
    if len(sys.argv) != 2:
        print("usage: make_graphs.py DIR | make_graphs.py split ALL_DIR OUT_DIR", file=sys.stderr)
        return 2
    root = sys.argv[1]
    for sub, name, fn in (("graphs", "qdq_cnn", build_qdq_cnn),
                          ("graphs", "qlinear_cnn", build_qlinear_cnn),
                          ("end_to_end", "effnet_lite_int8", build_effnet_lite)):
        d = os.path.join(root, sub, "test_" + name)
        x = fn(os.path.join(d, "model.onnx"))
        write_input(d, "x", x)
    build_u8s8_saturation(os.path.join(root, "graphs", "test_u8s8_saturation"))
    # The efficientnet-lite graph with every intermediate as an output (for the per-layer cases).
    src = os.path.join(root, "end_to_end", "test_effnet_lite_int8")
    all_dir = os.path.join(root, "effnet_all")
    write_all_outputs(os.path.join(src, "model.onnx"), all_dir)
    write_input(all_dir, "x", onnx.numpy_helper.to_array(
        onnx.load_tensor(os.path.join(src, "test_data_set_0", "input_0.pb"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
