"""Training benchmark: `vigil train` next to scikit-learn's random forests, then vigil's models on
vigil's engine next to ONNX Runtime. Prints its figures; it is not a test (run.sh drives it).

Usage: python3 bench.py --work DIR --vigil PATH --engine-bench PATH --ort-js PATH
                        [--seeds N] [--rounds N] [--quick] [--only quality,speed,predict]
                        [--docs PATH --command CMD]

Three parts, every one on files both sides read:

1. Quality. iris, wine, breast_cancer (classification, accuracy) and diabetes (regression, R²)
   from scikit-learn's bundled data. For each seed s, train_test_split(test_size=0.2,
   random_state=s, stratified for classification) is written as DIR/quality/<data>/s<s>/
   train.csv and holdout.csv (plus holdout.npy, the same features as float32). vigil trains on
   train.csv with --test-size 0 (no split of its own) and seed s; its model.onnx is run on
   holdout.npy with `vigil run`. scikit-learn reads the same two CSV files with numpy and fits
   RandomForestClassifier / RandomForestRegressor with vigil's hyperparameters spelled out
   (100 trees, max_features sqrt for classification and all for regression, bootstrap,
   min_samples_leaf 1, unlimited depth, random_state s, n_jobs 2). Target: vigil's mean over the
   seeds at most 2 points (percentage points of accuracy, or of R² x 100) below scikit-learn's.
2. Training time. make_classification(200,000 x 20, fixed seed), rounded to float32 and written
   once to DIR/synth_200k_20.csv (kept between runs). vigil: wall time of the whole
   `vigil train` command (CSV reading, training, ONNX and config writing) with --threads 2 and
   --test-size 0, and the training time vigil records in config.json when it records one.
   scikit-learn: numpy.loadtxt time of the same file, and fit time of
   RandomForestClassifier(n_estimators=100, n_jobs=2). Ratio = vigil / scikit-learn (below 1:
   vigil faster), both for read+train and train only. Best of --rounds rounds.
3. Prediction. The first seed's four vigil models, on a 10,000-row batch made of their holdout
   rows (every holdout row at least once, shuffled): bench/engine_bench (vigil's engine) and
   bench/engine/ort_bench.js (ONNX Runtime through onnxruntime-node), both single-threaded as in
   the engine benchmark. Outputs must be identical: labels equal, probabilities within 1e-6
   (absolute), regression values within 1e-6 relative. Timings: single-row median and per-row
   time in the batch.

Exit status 1 when a step fails or the two engines' outputs disagree; targets print PASS / MISS
and do not change the exit status (timings depend on the machine).
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

DATASETS = ("iris", "wine", "breast_cancer", "diabetes")
TEST_SIZE = 0.2
TREES = 100
THREADS = 2
POINTS = 2.0            # quality target: at most this many points below scikit-learn
PROB_TOL = 1e-6         # prediction: probabilities, absolute
REG_TOL = 1e-6          # prediction: regression values, relative
BATCH_ROWS = 10000
SYNTH_ROWS, SYNTH_FEATURES, SYNTH_SEED = 200000, 20, 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def load(name):
    """(X float64, y, task, feature names) of a scikit-learn bundled data set."""
    from sklearn import datasets
    loader = {"iris": datasets.load_iris, "wine": datasets.load_wine,
              "breast_cancer": datasets.load_breast_cancer,
              "diabetes": datasets.load_diabetes}[name]
    d = loader()
    task = "regression" if name == "diabetes" else "classification"
    y = d.target.astype(np.int64) if task == "classification" else d.target.astype(np.float64)
    names = [re.sub(r"[^A-Za-z0-9_]", "_", n).strip("_") for n in d.feature_names]
    return d.data.astype(np.float64), y, task, names


def write_csv(path, X, y, names, task, fmt="%r"):
    """Header, then one row per sample; features in `fmt` (default: shortest round-trip repr),
    the target last as an integer class or a float."""
    with open(path, "w") as f:
        f.write(",".join(names + ["target"]) + "\n")
        if fmt == "%r":
            for row, t in zip(X, y):
                f.write(",".join(repr(float(v)) for v in row))
                f.write(",%d\n" % t if task == "classification" else ",%r\n" % float(t))
        else:
            cols = np.column_stack([X, y])
            np.savetxt(f, cols, fmt=[fmt] * X.shape[1] + ["%d" if task == "classification"
                                                          else "%r"], delimiter=",")


def read_csv(path):
    """(X, y) of a CSV written by write_csv, read the way a scikit-learn user would (numpy)."""
    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return a[:, :-1], a[:, -1]


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s\n%s" % (
            what, p.returncode, " ".join(cmd), p.stderr.strip()[-2000:]))
    return p.stdout


def vigil_train(args, csv, target, name, repo, task, seed, max_features):
    """Runs `vigil train`; returns (model.onnx path, config dict or None, wall seconds)."""
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(repo)
    cmd = [args.vigil, "train", "--data", csv, "--target", target, "--name", name,
           "--repo", repo, "--task", task, "--test-size", "0", "--seed", str(seed),
           "--trees", str(TREES), "--threads", str(THREADS), "--max-features", max_features,
           "--min-samples-leaf", "1", "--bootstrap", "on", "--json"]
    t0 = time.perf_counter()
    run(cmd, "vigil train")
    wall = time.perf_counter() - t0
    models = sorted(glob.glob(os.path.join(repo, "**", "model.onnx"), recursive=True))
    if len(models) != 1:
        raise BenchError("vigil train wrote %d model.onnx files under %s" % (len(models), repo))
    config = None
    cfg = os.path.join(os.path.dirname(models[0]), "config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            config = json.load(f)
    return models[0], config, wall


def recorded_train_seconds(config):
    """The training time vigil records in config.json (training.training_seconds), or None."""
    try:
        return float(config["training"]["training_seconds"])
    except (TypeError, KeyError, ValueError):
        return None


def vigil_predict(args, model, npy, out_dir):
    """{output name: array} from `vigil run` on one .npy input."""
    shutil.rmtree(out_dir, ignore_errors=True)
    run([args.vigil, "run", model, "--input", "input=" + npy, "--out-dir", out_dir],
        "vigil run")
    return {os.path.basename(f)[:-4]: np.load(f) for f in glob.glob(os.path.join(out_dir, "*.npy"))}


def sk_model(task, seed):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    common = dict(n_estimators=TREES, max_depth=None, min_samples_split=2, min_samples_leaf=1,
                  bootstrap=True, random_state=seed, n_jobs=THREADS)
    if task == "classification":
        return RandomForestClassifier(criterion="gini", max_features="sqrt", **common)
    return RandomForestRegressor(criterion="squared_error", max_features=1.0, **common)


def score(task, truth, pred):
    """Accuracy or R², in points (x 100)."""
    truth = np.asarray(truth, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if task == "classification":
        return 100.0 * float(np.mean(truth == pred))
    ss_res = float(np.sum((truth - pred) ** 2))
    ss_tot = float(np.sum((truth - truth.mean()) ** 2))
    return 100.0 * (1.0 - ss_res / ss_tot)


# ---- 1. quality ---------------------------------------------------------------------------

def quality(args):
    from sklearn.model_selection import train_test_split
    results = {}
    for name in DATASETS:
        X, y, task, names = load(name)
        per_seed = []
        for seed in range(args.seeds):
            d = os.path.join(args.work, "quality", name, "s%d" % seed)
            os.makedirs(d, exist_ok=True)
            Xtr, Xte, ytr, yte = train_test_split(
                X, y, test_size=TEST_SIZE, random_state=seed,
                stratify=y if task == "classification" else None)
            train_csv, hold_csv = os.path.join(d, "train.csv"), os.path.join(d, "holdout.csv")
            write_csv(train_csv, Xtr, ytr, names, task)
            write_csv(hold_csv, Xte, yte, names, task)
            # Both sides get the holdout from the CSV text (vigil as float32, like its reader).
            Xh, yh = read_csv(hold_csv)
            hold_npy = os.path.join(d, "holdout.npy")
            np.save(hold_npy, Xh.astype(np.float32))

            log("quality: %s seed %d: vigil train ..." % (name, seed))
            model, _, _ = vigil_train(args, train_csv, "target", name, os.path.join(d, "repo"),
                                      task, seed, "sqrt" if task == "classification" else "all")
            outs = vigil_predict(args, model, hold_npy, os.path.join(d, "vigil_out"))
            pred = outs.get("label" if task == "classification" else "variable")
            if pred is None:
                raise BenchError("%s: vigil run wrote %s, not the expected output" % (
                    model, sorted(outs)))
            ours = score(task, yh, pred)

            log("quality: %s seed %d: scikit-learn fit ..." % (name, seed))
            Xs, ys = read_csv(train_csv)
            m = sk_model(task, seed)
            m.fit(Xs, ys.astype(np.int64) if task == "classification" else ys)
            theirs = score(task, yh, m.predict(Xh))
            per_seed.append({"seed": seed, "vigil": ours, "sklearn": theirs,
                             "n_train": len(ys), "n_holdout": len(yh), "model": model,
                             "holdout_npy": hold_npy})
        mean_v = float(np.mean([r["vigil"] for r in per_seed]))
        mean_s = float(np.mean([r["sklearn"] for r in per_seed]))
        results[name] = {"task": task, "seeds": per_seed, "vigil": mean_v, "sklearn": mean_s,
                         "diff": mean_v - mean_s, "pass": mean_v >= mean_s - POINTS,
                         "rows": len(y), "features": X.shape[1]}
    return results


# ---- 2. training time ---------------------------------------------------------------------

def synth_csv(args):
    path = os.path.join(args.work, "synth_200k_20.csv")
    if os.path.exists(path):
        return path
    from sklearn.datasets import make_classification
    log("speed: writing %s (once) ..." % path)
    X, y = make_classification(n_samples=SYNTH_ROWS, n_features=SYNTH_FEATURES,
                               n_informative=10, n_redundant=5, n_classes=2,
                               random_state=SYNTH_SEED)
    tmp = path + ".tmp"
    # float32 values printed exactly (%.9g round-trips a float32): both readers get the same
    # numbers, and neither pays for 17-digit parsing.
    write_csv(tmp, X.astype(np.float32), y, ["f%02d" % i for i in range(SYNTH_FEATURES)],
              "classification", fmt="%.9g")
    os.rename(tmp, path)
    return path


def speed(args):
    csv = synth_csv(args)
    best = {}

    def keep(k, v):
        if v is not None and (k not in best or v < best[k]):
            best[k] = v

    for r in range(args.rounds):
        log("speed: round %d/%d: vigil train (200,000 x 20, 100 trees, 2 threads) ..." % (
            r + 1, args.rounds))
        model, config, wall = vigil_train(args, csv, "target", "synth",
                                          os.path.join(args.work, "speed_repo"),
                                          "classification", SYNTH_SEED, "sqrt")
        keep("vigil_wall", wall)
        keep("vigil_train", recorded_train_seconds(config))
        keep("model_mb", os.path.getsize(model) / 1e6)
        log("speed: round %d/%d: scikit-learn (numpy.loadtxt + fit, n_jobs=2) ..." % (
            r + 1, args.rounds))
        t0 = time.perf_counter()
        X, y = read_csv(csv)
        t1 = time.perf_counter()
        m = sk_model("classification", SYNTH_SEED)
        m.fit(X, y.astype(np.int64))
        t2 = time.perf_counter()
        keep("sk_read", t1 - t0)
        keep("sk_fit", t2 - t1)
        del m, X, y
    best["ratio_total"] = best["vigil_wall"] / (best["sk_read"] + best["sk_fit"])
    if "vigil_train" in best:
        best["ratio_train"] = best["vigil_train"] / best["sk_fit"]
    best["pass"] = best["ratio_total"] < 1.0
    return best


# ---- 3. prediction ------------------------------------------------------------------------

def predict(args, qual):
    out_dir = os.path.join(args.work, "predict")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    if args.quick:
        runs = ["--single", "2000", "--warmup", "200", "--batch-runs", "3"]
    else:
        runs = ["--single", "20000", "--warmup", "2000", "--batch-runs", "15"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    results = {}
    for name in DATASETS:
        first = qual[name]["seeds"][0]
        hold = np.load(first["holdout_npy"])
        idx = np.resize(np.arange(len(hold)), BATCH_ROWS)  # every holdout row at least once
        np.random.default_rng(0).shuffle(idx)
        batch = os.path.join(out_dir, name + ".npy")
        np.save(batch, np.ascontiguousarray(hold[idx]))
        model = first["model"]
        res = {}
        for who, cmd in (("vigil", [args.engine_bench, model, batch] + runs),
                         ("ort", ["node", args.ort_js, model, batch] + runs +
                          ["--async-single", "0"])):
            log("predict: %s on %s ..." % (who, name))
            p = subprocess.run(cmd + ["--out-dir", out_dir, "--name", name], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                raise BenchError("%s failed on %s: %s" % (who, name, p.stderr.strip()[-2000:]))
            res[who] = json.loads(p.stdout.strip().splitlines()[-1])
        ours = {f.split(".")[-2]: np.load(f)
                for f in glob.glob(os.path.join(out_dir, name + ".ours.*.npy"))}
        ort = {f.split(".")[-2]: np.load(f)
               for f in glob.glob(os.path.join(out_dir, name + ".ort.*.npy"))}
        res.update(compare(ours, ort))
        res["verify_mismatches"] = res["vigil"].get("verify_mismatches", 0)
        res["ok"] = res["ok"] and res["verify_mismatches"] == 0
        results[name] = res
    return results


def compare(ours, ort):
    """Identical outputs: same names and shapes, labels equal, probabilities within PROB_TOL,
    regression values within REG_TOL relative."""
    notes, ok, max_diff = [], True, 0.0
    if not ours or set(ours) != set(ort):
        return {"ok": False, "detail": "outputs %s vs %s" % (sorted(ours), sorted(ort)),
                "max_diff": None}
    for out in sorted(ours):
        a, b = ours[out], ort[out]
        if a.shape != b.shape:
            ok = False
            notes.append("%s shape %s vs %s" % (out, a.shape, b.shape))
            continue
        if a.dtype.kind == "f":
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            diff = float(d.max()) if d.size else 0.0
            max_diff = max(max_diff, diff)
            if out == "probabilities":
                ok &= diff <= PROB_TOL
                notes.append("%s max abs diff %.3g" % (out, diff))
            else:
                rel = float((d / np.maximum(1.0, np.abs(b.astype(np.float64)))).max()) \
                    if d.size else 0.0
                ok &= rel <= REG_TOL
                notes.append("%s max abs diff %.3g (rel %.3g)" % (out, diff, rel))
        else:
            bad = int(np.count_nonzero(a.ravel() != b.ravel()))
            ok &= bad == 0
            notes.append("%s: %d of %d differ" % (out, bad, a.size))
    return {"ok": bool(ok), "detail": ", ".join(notes), "max_diff": max_diff}


# ---- report -------------------------------------------------------------------------------

def tables(args, qual, spd, pred):
    out = []
    if qual:
        out += ["### Quality (holdout, mean of %d seeds; accuracy %%, R² x 100)" % args.seeds, "",
                "| data set | rows x features | task | metric | vigil | scikit-learn | "
                "vigil - sklearn | target (>= -%g) |" % POINTS,
                "|---|---|---|---|---:|---:|---:|---|"]
        for name, r in qual.items():
            out.append("| %s | %d x %d | %s | %s | %.2f | %.2f | %+.2f | %s |" % (
                name, r["rows"], r["features"], r["task"],
                "accuracy" if r["task"] == "classification" else "R²",
                r["vigil"], r["sklearn"], r["diff"], "PASS" if r["pass"] else "MISS"))
        out += ["", "Per seed (vigil / scikit-learn):", "",
                "| data set | " + " | ".join("seed %d" % s for s in range(args.seeds)) + " |",
                "|---|" + "---|" * args.seeds]
        for name, r in qual.items():
            out.append("| %s | %s |" % (name, " | ".join(
                "%.2f / %.2f" % (s["vigil"], s["sklearn"]) for s in r["seeds"])))
        out.append("")
    if spd:
        def f(k, unit="s"):
            return "%.2f %s" % (spd[k], unit) if k in spd else "-"
        out += ["### Training time (200,000 x 20 synthetic classification, 100 trees, 2 threads; "
                "best of %d)" % args.rounds, "",
                "| | vigil | scikit-learn | ratio vigil / sklearn | target (< 1) |",
                "|---|---:|---:|---:|---|",
                "| read CSV + train | %s (whole `vigil train` command) | %s (loadtxt %s + fit %s) "
                "| %.2fx | %s |" % (
                    f("vigil_wall"), "%.2f s" % (spd["sk_read"] + spd["sk_fit"]),
                    f("sk_read"), f("sk_fit"), spd["ratio_total"],
                    "PASS" if spd["pass"] else "MISS"),
                "| train only | %s (config.json) | %s (fit) | %s | |" % (
                    f("vigil_train"), f("sk_fit"),
                    "%.2fx" % spd["ratio_train"] if "ratio_train" in spd else "-"),
                "", "vigil's model.onnx: %.1f MB." % spd["model_mb"], ""]
    if pred:
        out += ["### Prediction: vigil's models on vigil's engine and on ONNX Runtime "
                "(10,000-row batch of holdout rows, single-threaded)", "",
                "| model | outputs | max diff | vigil single-row µs | ORT single-row µs | ratio | "
                "vigil per-row µs (batch) | ORT per-row µs (batch) | ratio |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in pred.items():
            v, o = r["vigil"], r["ort"]
            out.append("| %s (seed 0) | %s | %s | %.2f | %.2f | %.2fx | %.3f | %.3f | %.2fx |" % (
                name, "identical" if r["ok"] else "MISMATCH",
                "-" if r["max_diff"] is None else "%.2g" % r["max_diff"],
                v["single_us"], o["single_us"], v["single_us"] / o["single_us"],
                v["batch_row_us"], o["batch_row_us"], v["batch_row_us"] / o["batch_row_us"]))
        out += ["", "Detail: " + "; ".join("%s: %s, single-row vs batch mismatches %d" % (
            n, r["detail"], r["verify_mismatches"]) for n, r in pred.items()), ""]
    return out


def write_docs(args, text):
    try:
        load = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        load = "?"
    cpu = platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sklearn
    doc = [
        "# Training benchmarks",
        "",
        "Latest figures from `%s` (%s UTC), written by `bench/train/bench.py`; the engine's "
        "figures are in [benchmarks.md](benchmarks.md)." % (
            args.command, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")),
        "",
        "Machine: %s, %d CPUs, load average %s at the end of the run; scikit-learn %s, "
        "numpy %s." % (cpu, os.cpu_count() or 0, load, sklearn.__version__, np.__version__),
        "",
        "Method (details in `bench/train/bench.py`'s docstring):",
        "",
        "- Quality: for each seed, scikit-learn's `train_test_split` (test_size 0.2, stratified "
        "for classification, random_state = seed) is written as train.csv and holdout.csv; "
        "`vigil train --test-size 0 --seed S` trains on train.csv and `vigil run` evaluates its "
        "model.onnx on the holdout; scikit-learn reads the same files and fits with vigil's "
        "hyperparameters (100 trees, max_features sqrt / all for regression, bootstrap, "
        "min_samples_leaf 1, unlimited depth, random_state S, n_jobs 2). Target: vigil at most "
        "%g points below scikit-learn on the mean." % POINTS,
        "- Training time: `make_classification` (200,000 rows, 20 features, 10 informative, "
        "random_state 0), written once as CSV; the whole `vigil train --threads 2` command "
        "against numpy.loadtxt + `fit` with n_jobs=2 (and training alone against `fit`).",
        "- Prediction: the seed-0 models above on a 10,000-row batch of their holdout rows, "
        "through `bench/engine_bench` and `bench/engine/ort_bench.js` (ONNX Runtime from npm "
        "onnxruntime-node), both single-threaded as in the engine benchmark; outputs must be "
        "identical (labels equal, probabilities within 1e-6 absolute, regression values within "
        "1e-6 relative).",
        "",
    ] + text
    with open(args.docs, "w") as f:
        f.write("\n".join(doc).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--engine-bench", required=True)
    ap.add_argument("--ort-js", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="quality,speed,predict")
    ap.add_argument("--docs")
    ap.add_argument("--command", default="bench/train/run.sh")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    if "predict" in parts:
        parts.add("quality")  # prediction uses the quality part's models
    os.makedirs(args.work, exist_ok=True)

    qual = spd = pred = None
    failed = []
    try:
        if "quality" in parts:
            qual = quality(args)
        if "predict" in parts:
            pred = predict(args, qual)
    except BenchError as e:
        failed.append(str(e))
    try:
        if "speed" in parts:
            spd = speed(args)
    except BenchError as e:
        failed.append(str(e))

    text = tables(args, qual, spd, pred)
    print("\n".join(text))
    for e in failed:
        print("FAILED: " + e)
    if args.docs and not failed:
        write_docs(args, text)
        log("wrote %s" % args.docs)
    bad = failed or (pred and not all(r["ok"] for r in pred.values()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
