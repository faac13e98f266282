"""Where the time goes in one vision model, on both engines (bench/engine/run.sh --profile).

Usage: /usr/bin/python3 profile_vision.py VISION_WORK_DIR NAME --bench BUILD/engine_bench
                                          [--runs N]

- ONNX Runtime: ort_bench.js --profile (the session option enableProfiling) writes ORT's JSON
  trace; the per-node kernel times ("Node" events named *_kernel_time) are summed per operator
  type (after ORT's graph optimisations, so fused nodes such as FusedConv appear as such) and
  divided by the number of runs.
- vigil: the engine has no per-node timer, so engine_bench runs under `perf record` and the
  samples are summed per symbol (the operator kernels are the engine's static functions, named
  after the operator; OpenBLAS's sgemm kernels are shown as such). Percentages of the samples.
Writes VISION_WORK_DIR/profile.NAME.md and prints it. Needs perf (linux-perf) and node.
"""

import argparse
import collections
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def ort_profile(work, name, runs):
    prefix = os.path.join(work, "ort_profile_" + name)
    for f in glob.glob(prefix + "*.json"):
        os.remove(f)
    model = os.path.join(work, "models", name + ".onnx")
    batch = os.path.join(work, "models", name + ".npy")
    out = subprocess.run(["node", os.path.join(HERE, "ort_bench.js"), model, batch, "--single",
                          str(runs), "--warmup", "2", "--batch-runs", "0", "--async-single", "0",
                          "--profile", prefix], check=True, capture_output=True, text=True)
    res = json.loads(out.stdout)
    trace = json.load(open(res["profile"]))
    per_op, per_node, counts = collections.Counter(), collections.Counter(), collections.Counter()
    for ev in trace:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        node = ev["name"][:-len("_kernel_time")]
        op = ev.get("args", {}).get("op_name", "?")
        per_op[op] += ev["dur"]
        per_node[(node, op)] += ev["dur"]
        counts[node] += 1
    # The profiled session runs min(runs, 200) times (plus none for warm-up): divide by the
    # number of times the most frequent node ran.
    n = max(counts.values()) if counts else 1
    return {op: us / n for op, us in per_op.items()}, \
        {k: us / n for k, us in per_node.items()}, res["single_us"]


def perf_profile(work, name, bench, runs):
    data = os.path.join(work, "perf.%s.data" % name)
    model = os.path.join(work, "models", name + ".onnx")
    batch = os.path.join(work, "models", name + ".npy")
    subprocess.run(["perf", "record", "-q", "-F", "2000", "-o", data, bench, model, batch,
                    "--single", str(runs), "--warmup", "2", "--batch-runs", "0"], check=True,
                   capture_output=True)
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort",
                          "dso,sym"], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in rep.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if not parts[0].endswith("%"):
            continue
        pct = float(parts[0][:-1])
        dso = parts[1]
        sym = " ".join(parts[3:]) if len(parts) > 3 else "?"
        rows.append((pct, dso, sym))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("name")
    ap.add_argument("--bench", required=True)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    per_op, per_node, ort_p50 = ort_profile(args.work, args.name, args.runs)
    total = sum(per_op.values())
    lines = ["### %s" % args.name, "",
             "ONNX Runtime (trace of %d runs; its p50 in the same process: %.2f ms; kernel time "
             "per run %.2f ms):" % (args.runs, ort_p50 / 1e3, total / 1e3), "",
             "| ORT operator (after its fusions) | ms per run | share |", "|---|---:|---:|"]
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1]):
        lines.append("| %s | %.3f | %.1f%% |" % (op, us / 1e3, 100 * us / total if total else 0))
    lines += ["", "ORT's 10 slowest nodes:", "", "| node | op | ms per run |", "|---|---|---:|"]
    for (node, op), us in sorted(per_node.items(), key=lambda kv: -kv[1])[:10]:
        lines.append("| %s | %s | %.3f |" % (node, op, us / 1e3))
    try:
        rows = perf_profile(args.work, args.name, args.bench, args.runs)
        lines += ["", "vigil (`perf record` of engine_bench, %d runs; share of all samples, load "
                  "and set-up included):" % args.runs, "",
                  "| symbol | object | share |", "|---|---|---:|"]
        for pct, dso, sym in rows[:25]:
            lines.append("| `%s` | %s | %.1f%% |" % (sym, dso, pct))
    except (OSError, subprocess.CalledProcessError) as e:
        lines += ["", "vigil: perf failed (%s)" % e]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.work, "profile.%s.md" % args.name), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
