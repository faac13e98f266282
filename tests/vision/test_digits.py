"""Tests the built-in image model models/digits against torch's recorded holdout predictions.

Usage: /usr/bin/python3 tests/vision/test_digits.py engine|server VIGIL SOURCE_DIR WORK_DIR

Needs numpy, scikit-learn (for the images: load_digits() ships with it, no download) and PIL.
No torch: the reference is models/digits/1/holdout.json, written by scripts/train_digits.py.

engine: builds the model input for every held-out image exactly as the config's "image" block
        says the server does (PNG pixel p = round(v * 255 / 16), then (p / 255 - mean) / std in
        float32), runs `vigil run` on the whole holdout as one batch and on the first image
        alone, and checks every logit within ATOL of torch's and every argmax equal to torch's.
server: starts `vigil serve` on a copy of models/digits, posts each held-out image as a PNG to
        /models/digits/predict (raw image/png bodies for all; a few as a multipart field "file"
        and as {"image_b64": ...}), and checks predicted_label against torch's prediction for
        every image, the holdout accuracy against the recorded one, and the answer's shape
        (confidence = top_k[0].confidence = softmax of torch's logits within ATOL, top_k sorted,
        of the config's length, an id).

Prints one line per failed check and a summary "digits-<mode> tests: N passed, N failed"; exit
status 0 only when nothing failed.
"""

import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

ATOL = 1e-4
N_MULTIPART = 12
N_B64 = 12


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, msg):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {msg}", file=sys.stderr)
        return cond

    def finish(self):
        print(f"{self.name} tests: {self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 and self.passed > 0 else 1


def load_reference(source):
    vdir = os.path.join(source, "models", "digits", "1")
    with open(os.path.join(vdir, "holdout.json")) as f:
        holdout = json.load(f)
    with open(os.path.join(vdir, "config.json")) as f:
        config = json.load(f)
    digits = load_digits()
    idx = np.array(holdout["indices"], dtype=np.int64)
    v = digits.data[idx].astype(np.float64)
    pixels = np.floor(v * 255.0 / 16.0 + 0.5).astype(np.uint8)     # [N, 64]
    if hashlib.sha256(pixels.tobytes()).hexdigest() != holdout["pixels_sha256"]:
        raise SystemExit("the holdout pixels differ from those models/digits was trained on "
                         "(scikit-learn's digits data changed?)")
    if digits.target[idx].tolist() != holdout["labels"]:
        raise SystemExit("the holdout labels differ from holdout.json")
    return holdout, config, pixels


def model_input(pixels, config):
    norm = config["image"]["normalize"]
    assert norm["type"] == "mean_std"
    mean = np.float32(norm["mean"][0])
    std = np.float32(norm["std"][0])
    x = pixels.astype(np.float32) / np.float32(255.0)
    return ((x - mean) / std).reshape(-1, 1, 8, 8).astype(np.float32)


def run_engine(vigil, model, x, work, tag):
    path = os.path.join(work, f"{tag}.npy")
    np.save(path, x)
    r = subprocess.run([vigil, "run", model, "--input", f"input={path}"], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        return None, f"vigil run exit {r.returncode}: {r.stderr.strip()[:500]}"
    out = json.loads(r.stdout)["outputs"]["logits"]
    return np.array(out["data"], dtype=np.float64).reshape(out["shape"]), None


def test_engine(vigil, source, work):
    c = Checks("digits-engine")
    holdout, config, pixels = load_reference(source)
    want = np.array(holdout["logits"], dtype=np.float64)
    pred = np.array(holdout["predicted"])
    model = os.path.join(source, "models", "digits", "1", "model.onnx")
    x = model_input(pixels, config)
    for tag, rows in (("batch", slice(None)), ("single", slice(0, 1))):
        got, err = run_engine(vigil, model, x[rows], work, tag)
        if not c.check(err is None, f"engine {tag}: {err}"):
            continue
        if not c.check(got.shape == want[rows].shape,
                       f"engine {tag}: logits shape {got.shape}, expected {want[rows].shape}"):
            continue
        diff = np.abs(got - want[rows])
        worst = np.unravel_index(int(diff.argmax()), diff.shape)
        c.check(diff.max() <= ATOL, f"engine {tag}: max |logit - torch| {diff.max():.3g} at "
                f"image {worst[0]} class {worst[1]} (> {ATOL})")
        wrong = np.nonzero(got.argmax(axis=1) != pred[rows])[0]
        c.check(len(wrong) == 0, f"engine {tag}: argmax differs from torch's for images "
                f"{wrong.tolist()[:20]}")
        print(f"engine {tag}: {len(got)} images, max |logit - torch| {diff.max():.3g}")
    return c.finish()


# ---- server ----------------------------------------------------------------------------------


def png_bytes(pixels64):
    img = Image.fromarray(pixels64.reshape(8, 8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class Server:
    def __init__(self, vigil, repo, work):
        self.log_path = os.path.join(work, "serve.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([vigil, "serve", "--host", "127.0.0.1", "--port", "0",
                                      "--models", repo, "--threads", "2"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env={k: v for k, v in os.environ.items()
                                          if not k.startswith("VIGIL_")})
        self.url = None
        deadline = time.time() + 20
        while time.time() < deadline and self.proc.poll() is None:
            with open(self.log_path) as f:
                m = re.search(r"serving http://\S*?:(\d+)", f.read())
            if m:
                self.url = f"http://127.0.0.1:{m.group(1)}"
                return
            time.sleep(0.1)

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def post(self, path, body, content_type):
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            return 0, str(e).encode()


def multipart(field, filename, data, ctype):
    boundary = "vigil-digits-" + hashlib.sha1(data).hexdigest()[:16]
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def check_answer(c, what, status, body, want_label, logits, top_k_len, classes):
    if not c.check(status == 200, f"{what}: status {status}, body {body[:300]!r}"):
        return None
    try:
        ans = json.loads(body)
    except ValueError:
        c.check(False, f"{what}: answer is not JSON: {body[:300]!r}")
        return None
    label = ans.get("predicted_label")
    c.check(str(label) == str(want_label),
            f"{what}: predicted_label {label!r}, torch predicted {want_label!r}")
    p = softmax(logits)
    conf = ans.get("confidence")
    c.check(isinstance(conf, (int, float)) and abs(conf - p.max()) <= ATOL,
            f"{what}: confidence {conf!r}, softmax of torch's logits gives {p.max():.6f}")
    top = ans.get("top_k")
    if c.check(isinstance(top, list) and len(top) == top_k_len,
               f"{what}: top_k {top!r}, expected a list of {top_k_len}"):
        order = np.argsort(-p, kind="stable")[:top_k_len]
        c.check(all(isinstance(t, dict) for t in top) and
                [str(t.get("label")) for t in top] == [classes[k] for k in order] and
                all(abs(t.get("confidence", -1) - p[k]) <= ATOL for t, k in zip(top, order)),
                f"{what}: top_k {top!r}, expected labels {[classes[k] for k in order]} with "
                f"confidences {[round(float(p[k]), 6) for k in order]}")
        c.check(top[0].get("confidence") == conf if isinstance(top[0], dict) else False,
                f"{what}: top_k[0].confidence differs from confidence")
    c.check("id" in ans and ans["id"] not in (None, ""), f"{what}: answer has no id: {ans!r}")
    return label


def test_server(vigil, source, work):
    c = Checks("digits-server")
    holdout, config, pixels = load_reference(source)
    logits = np.array(holdout["logits"], dtype=np.float64)
    pred = holdout["predicted"]
    labels = holdout["labels"]
    classes = config["classes"]
    with open(os.path.join(source, "models", "digits", "1", "labels.txt")) as f:
        c.check(f.read().split("\n")[:len(classes)] == classes, "labels.txt differs from classes")
    top_k_len = config["top_k"]

    repo = os.path.join(work, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(os.path.join(source, "models", "digits"), os.path.join(repo, "digits"))
    srv = Server(vigil, repo, work)
    try:
        if not c.check(srv.url is not None,
                       "server not ready; its log:\n" + srv.log_text()[-2000:]):
            return c.finish()
        correct = 0
        for i in range(len(pred)):
            png = png_bytes(pixels[i])
            status, body = srv.post("/models/digits/predict", png, "image/png")
            label = check_answer(c, f"image {i} (raw png)", status, body, classes[pred[i]],
                                 logits[i], top_k_len, classes)
            if label is not None and str(label) == classes[labels[i]]:
                correct += 1
        acc = correct / len(pred)
        c.check(acc == holdout["accuracy"], f"holdout accuracy over the server {acc:.6f} "
                f"({correct}/{len(pred)}), recorded {holdout['accuracy']:.6f}")
        c.check(acc >= 0.97, f"holdout accuracy {acc:.4f} below 0.97")
        print(f"server: {correct}/{len(pred)} correct, accuracy {acc:.4f} "
              f"(recorded {holdout['accuracy']:.4f})")
        # spread the other encodings over the holdout, misclassified images first
        miss = [i for i in range(len(pred)) if pred[i] != labels[i]]
        rest = [i for i in range(len(pred)) if i not in miss]
        picks = (miss + rest[::29])[:N_MULTIPART + N_B64]
        for j, i in enumerate(picks):
            png = png_bytes(pixels[i])
            if j < N_MULTIPART:
                body, ctype = multipart("file", f"digit{i}.png", png, "image/png")
                what = f"image {i} (multipart)"
            else:
                body = json.dumps({"image_b64": base64.b64encode(png).decode()}).encode()
                ctype = "application/json"
                what = f"image {i} (image_b64)"
            status, ans = srv.post("/models/digits/predict", body, ctype)
            check_answer(c, what, status, ans, classes[pred[i]], logits[i], top_k_len, classes)
        c.check(srv.proc.poll() is None, "server exited during the test")
    finally:
        srv.stop()
    log = srv.log_text()
    c.check(not re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", log),
            "sanitizer report in the server log:\n" + log[-2000:])
    return c.finish()


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("engine", "server"):
        raise SystemExit(__doc__)
    mode, vigil, source, work = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    sys.exit(test_engine(vigil, source, work) if mode == "engine" else
             test_server(vigil, source, work))


if __name__ == "__main__":
    main()
