"""Trains vigil's built-in image model, models/digits, and writes it into the model repository.

Usage: /usr/bin/python3 scripts/train_digits.py [REPO]        (REPO defaults to "models")

Needs torch 1.13 (Debian python3-torch), scikit-learn, numpy and onnx. Only retraining needs them:
the result is committed, so building, serving and testing vigil never run this script.

What it does (docs/models-digits.md):
  - data: scikit-learn's load_digits(), 1,797 8x8 greyscale images with pixel values 0..16;
  - split: a stratified holdout of 20 % with a fixed seed (the indices are recorded, so the test
    does not depend on train_test_split's algorithm staying the same across sklearn versions);
  - input: the model is trained on exactly what the server feeds it for the PNG of an image. The
    PNG of a digit stores p = round(v * 255 / 16) (white ink on black); the server computes
    x = p / 255 (within 0.002 of v / 16) and then (x - MEAN) / STD, the config's "mean_std"
    normalisation. Training on p / 255 rather than v / 16 means the recorded predictions and the
    holdout accuracy are those of the served model on the served input, not an approximation;
  - model: Conv3x3(1->8) Relu Conv3x3(8->16) Relu MaxPool2 Flatten Linear(256->32) Relu
    Linear(32->10), about 9,800 parameters (a 40 KB ONNX file);
  - export: torch.onnx.export, opset 13, input "input" [N, 1, 8, 8], output "logits" [N, 10],
    dynamic batch axis; checked with onnx.checker;
  - writes REPO/digits/1/{model.onnx, labels.txt, config.json, holdout.json} and
    REPO/digits/config.json (a byte copy of the version's, as docs/model-repository.md says).
    holdout.json holds the holdout indices, true labels, torch's predictions and logits: the
    reference tests/vision/test_digits.py checks the engine and the server against.

Training is deterministic (fixed seeds, one thread, deterministic algorithms), so rerunning the
script rewrites byte-identical files. The files carry no timestamp for that reason.
"""

import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 42
TEST_SIZE = 0.2
EPOCHS = 60
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
OPSET = 13
# Normalisation of x = p / 255 (p the PNG pixel): roughly the training set's mean and standard
# deviation, rounded so the config carries short numbers. Any fixed values work as long as the
# config and training agree.
MEAN = 0.3
STD = 0.4
NAME = "digits"
VERSION = 1
CLASSES = [str(d) for d in range(10)]


def png_pixels(v):
    """The 8-bit pixel the PNG of an image stores for sklearn value v in 0..16."""
    # v * 255 / 16 is halfway between two integers only for v = 8 (127.5, since 255 = -1 mod 16);
    # half up and half to even both give 128 there, so "round" is unambiguous.
    return np.floor(v.astype(np.float64) * 255.0 / 16.0 + 0.5).astype(np.uint8)


def model_input(pixels):
    """The model input the server makes of 8-bit pixels p [N, 64]: (p / 255 - MEAN) / STD."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x.reshape(-1, 1, 8, 8).astype(np.float32)


class DigitsNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.classifier = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(16 * 4 * 4, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def metrics(y_true, y_pred):
    n = len(CLASSES)
    cm = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    per_class = {}
    for k, name in enumerate(CLASSES):
        tp = int(cm[k, k])
        predicted = int(cm[:, k].sum())
        support = int(cm[k, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return {
        "holdout_rows": int(len(y_true)),
        "accuracy": float(np.trace(cm)) / float(len(y_true)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "computed_with": "torch",
    }


def to_json(v, indent=0):
    """JSON like the configs `vigil train` writes (cJSON's layout): objects one member per line,
    tab-indented; arrays of scalars on one line, arrays of arrays one element per line."""
    pad = "\t" * (indent + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f"{pad}{json.dumps(k)}:\t{to_json(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "\t" * indent + "}"
    if isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v):
        return "[" + ", ".join(to_json(x, indent + 1) for x in v) + "]"
    if isinstance(v, list):
        return "[" + ", ".join(json.dumps(x) for x in v) + "]"
    return json.dumps(v)


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else "models"
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    digits = load_digits()
    values = digits.data.astype(np.int64)            # [1797, 64], 0..16
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=TEST_SIZE, stratify=y,
                                           random_state=SEED)
    train_idx = np.sort(train_idx)
    test_idx = np.sort(test_idx)
    pixels = png_pixels(values)
    x_train = torch.from_numpy(model_input(pixels[train_idx]))
    y_train = torch.from_numpy(y[train_idx])
    x_test = torch.from_numpy(model_input(pixels[test_idx]))
    y_test = y[test_idx]

    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for start in range(0, len(perm), BATCH_SIZE):
            b = perm[start:start + BATCH_SIZE]
            opt.zero_grad()
            loss = loss_fn(model(x_train[b]), y_train[b])
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: training loss {total / len(perm):.4f}", file=sys.stderr)

    model.eval()
    with torch.no_grad():
        logits = model(x_test).numpy()
    pred = logits.argmax(axis=1)
    m = metrics(y_test, pred)
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).min())
    print(f"holdout accuracy {m['accuracy']:.4f} ({int(np.trace(np.array(m['confusion_matrix'])))}"
          f"/{len(y_test)}), smallest top-2 logit margin {margin:.4g}", file=sys.stderr)

    vdir = os.path.join(repo, NAME, str(VERSION))
    os.makedirs(vdir, exist_ok=True)
    onnx_path = os.path.join(vdir, "model.onnx")
    dummy = torch.zeros(1, 1, 8, 8)
    torch.onnx.export(model, dummy, onnx_path + ".tmp", opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    os.replace(onnx_path + ".tmp", onnx_path)
    onnx.checker.check_model(onnx.load(onnx_path), full_check=True)

    n_params = sum(p.numel() for p in model.parameters())
    config = {
        "schema_version": 1,
        "name": NAME,
        "version": VERSION,
        "description": "Handwritten digit classifier (built-in): a small CNN trained with torch "
                       "on scikit-learn's 8x8 digits; takes an 8x8 greyscale image, white ink on "
                       "black",
        "task": "image_classification",
        "platform": "onnx",
        "model_file": "model.onnx",
        "input": {"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]},
        "outputs": {"logits": {"name": "logits", "datatype": "FP32", "shape": [-1, 10]}},
        "classes": CLASSES,
        "image": {
            "layout": "NCHW",
            "channels": 1,
            "color_order": "RGB",
            "resize_short_side": 8,
            "crop": [8, 8],
            "normalize": {"type": "mean_std", "mean": [MEAN], "std": [STD]},
            "dtype": "float32",
            "output": "logits",
        },
        "top_k": 3,
        "labels_file": "labels.txt",
        "training": {
            "script": "scripts/train_digits.py",
            "framework": "torch 1.13",
            "data": "sklearn.datasets.load_digits",
            "rows": int(len(y)),
            "training_rows": int(len(train_idx)),
            "holdout_rows": int(len(test_idx)),
            "test_size": TEST_SIZE,
            "seed": SEED,
            "epochs": EPOCHS,
            "hyperparameters": {
                "architecture": "conv3x3(8) relu conv3x3(16) relu maxpool2 linear(32) relu "
                                "linear(10)",
                "parameters": int(n_params),
                "batch_size": BATCH_SIZE,
                "optimizer": "adam",
                "learning_rate": LEARNING_RATE,
                "lr_schedule": "cosine",
                "weight_decay": WEIGHT_DECAY,
                "onnx_opset": OPSET,
            },
        },
        "metrics": m,
    }
    text = (to_json(config) + "\n").encode()
    write(os.path.join(vdir, "config.json"), text)
    write(os.path.join(repo, NAME, "config.json"), text)
    write(os.path.join(vdir, "labels.txt"), ("\n".join(CLASSES) + "\n").encode())

    holdout = {
        "about": "Holdout of models/digits (scripts/train_digits.py): indices into "
                 "sklearn.datasets.load_digits(), true labels, torch's predicted labels and logits "
                 "for the PNG of each image (pixel = round(v * 255 / 16), half up). pixels_sha256 "
                 "is the SHA-256 of those pixels, uint8, image after image, to catch a change in "
                 "the data set.",
        "seed": SEED,
        "test_size": TEST_SIZE,
        "accuracy": m["accuracy"],
        "pixels_sha256": hashlib.sha256(pixels[test_idx].tobytes()).hexdigest(),
        "indices": test_idx.tolist(),
        "labels": y_test.tolist(),
        "predicted": pred.tolist(),
        "logits": [[float(f"{v:.7g}") for v in row] for row in logits.tolist()],
    }
    write(os.path.join(vdir, "holdout.json"),
          (json.dumps(holdout, separators=(",", ":")) + "\n").encode())
    print(f"wrote {vdir}: model.onnx {os.path.getsize(onnx_path)} bytes, {n_params} parameters",
          file=sys.stderr)


if __name__ == "__main__":
    main()
