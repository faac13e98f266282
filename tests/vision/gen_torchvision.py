"""Exports torchvision architectures to ONNX with torch's outputs as the expected results.

Usage: /usr/bin/python3 tests/vision/gen_torchvision.py DIR [--only SUBSTR]

Needs torch and torchvision (Debian python3-torch 1.13, python3-torchvision 0.14), onnx and numpy.
The models are too big to commit (resnet18 alone is 45 MB), so the build runs this script
(tests/cmake/vision.cmake) and the `torchvision` test compares vigil's engine with torch on them.

For each architecture it writes, in ONNX's node-test layout:
  DIR/test_tv_<case>/model.onnx
  DIR/test_tv_<case>/test_data_set_K/input_0.pb    float32 [N, 3, 224, 224]
  DIR/test_tv_<case>/test_data_set_K/output_0.pb   float32 [N, 1000]: torch's output, eval mode

Weights (weights=None, never downloaded) come from torchvision's own initialisation under a fixed
seed, then every BatchNorm gets a random affine (weight in [0.5, 1.5], bias N(0, 0.1)) and running
statistics measured on random inputs (a cumulative average over CALIB_BATCHES training-mode
forward passes). With torchvision's default statistics (mean 0, variance 1) a BatchNorm is an
affine map the identity is close to, which exercises Conv+BN folding only weakly, and without
normalisation the activations of a randomly initialised deep network grow or vanish with depth,
so an absolute tolerance would mean nothing. Calibrated statistics keep every activation O(1),
as in a trained network, and the output layer is scaled so the logits' standard deviation is 1,
so the test's atol 1e-4 is a real bound: 1e-4 of the logits' spread.

Export: opset 17 for the seven architectures (the highest torch 1.13 emits; the engine registers
every operator they use at 17), dynamic batch axis, default constant folding, which in eval mode
folds BatchNormalization into the preceding Conv inside torch (densenet121 keeps the 62 that
do not follow a Conv). The two *_bn cases keep every BatchNormalization node (checked below) so
that vigil's own load-time Conv+BN folding and activation fusion are compared with torch, at the
older opsets most exported models carry: resnet18 at 13, mobilenet_v3_small at 14 (the first with
HardSwish). do_constant_folding=False with training=TrainingMode.EVAL does not keep them (torch's
eval peephole pass folds whenever training is EVAL); training=TrainingMode.PRESERVE on a model in
eval mode skips that pass and still exports inference-mode nodes.

Every case's inputs are N(0, 1) from a seeded generator; a second data set (or, for one case, a
batch of 2) exercises a different input. Reference outputs are torch's float32 results.
"""

import os
import shutil
import sys

import numpy as np
import onnx
import torch
import torchvision
from onnx import numpy_helper

SEED = 1234
CALIB_BATCHES = 4
CALIB_N = 4

# (case name, torchvision constructor, opset, batch sizes of the data sets, keep BN nodes)
CASES = [
    ("resnet18", "resnet18", 17, [1, 1], False),
    ("mobilenet_v2", "mobilenet_v2", 17, [1, 2], False),
    ("mobilenet_v3_small", "mobilenet_v3_small", 17, [1, 1], False),
    ("efficientnet_b0", "efficientnet_b0", 17, [1], False),
    ("squeezenet1_1", "squeezenet1_1", 17, [1, 1], False),
    ("shufflenet_v2_x0_5", "shufflenet_v2_x0_5", 17, [1], False),
    ("densenet121", "densenet121", 17, [1], False),
    ("resnet18_bn", "resnet18", 13, [1], True),
    ("mobilenet_v3_small_bn", "mobilenet_v3_small", 14, [1], True),
]


def seeded(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build(arch, seed):
    gen = seeded(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None              # cumulative average over the calibration passes
        model.train()
        for _ in range(CALIB_BATCHES):
            model(torch.randn(CALIB_N, 3, 224, 224, generator=gen))
    for bn in bns:
        bn.momentum = 0.1                   # back to the default (only training uses it)
    model.eval()
    # Scale the output layer so the logits' standard deviation on the calibration inputs is 1:
    # torchvision initialises some heads with tiny weights (mobilenet_v3's N(0, 0.01)), and an
    # absolute tolerance on logits of 0.01 would be a loose test.
    head = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    with torch.no_grad():
        std = float(model(torch.randn(CALIB_N, 3, 224, 224, generator=gen)).std())
        head.weight.mul_(1.0 / std)
        if head.bias is not None:
            head.bias.mul_(1.0 / std)
    return model


def export(model, path, opset, keep_bn):
    kwargs = {}
    if keep_bn:
        # TrainingMode.EVAL runs torch's eval peephole pass, which folds BatchNormalization into
        # Conv whatever do_constant_folding says (torch/onnx/utils.py, _model_to_graph); PRESERVE
        # on a model in eval mode skips that pass and still exports inference-mode nodes.
        kwargs = {"do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **kwargs)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    n_bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    if keep_bn and n_bn == 0:
        raise SystemExit(f"{path}: export kept no BatchNormalization node")
    return ops, n_bn


def write_pb(path, array):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array).SerializeToString())


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    only = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--only" else None
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    for i, (name, arch, opset, batches, keep_bn) in enumerate(CASES):
        if only and only not in name:
            continue
        case = os.path.join(out, f"test_tv_{name}")
        if os.path.isdir(case):
            shutil.rmtree(case)
        os.makedirs(case)
        model = build(arch, SEED + i)
        ops, n_bn = export(model, os.path.join(case, "model.onnx"), opset, keep_bn)
        gen = torch.Generator().manual_seed(SEED + 100 + i)
        spread = 0.0
        for k, n in enumerate(batches):
            x = torch.randn(n, 3, 224, 224, generator=gen)
            with torch.no_grad():
                y = model(x)
            spread = max(spread, float(y.std()))
            ds = os.path.join(case, f"test_data_set_{k}")
            os.makedirs(ds)
            write_pb(os.path.join(ds, "input_0.pb"), x.numpy().astype(np.float32))
            write_pb(os.path.join(ds, "output_0.pb"), y.numpy().astype(np.float32))
        print(f"test_tv_{name}: opset {opset}, {n_bn} BatchNormalization, batches {batches}, "
              f"output std {spread:.3g}, ops {' '.join(ops)}", file=sys.stderr)


if __name__ == "__main__":
    main()
