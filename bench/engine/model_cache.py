"""The model directory of a benchmark run, shared by bench/engine/make_models.py and
vision_models.py: OUT/NAME.onnx with OUT/NAME.json (its manifest entry) per model, and
OUT/models.json listing the entries. A model is rebuilt only when its entry is missing or was built
for another row count or another source."""
import json
import os
import sys


def build_models(out, names, rows, source, build):
    """source(name): the stamp of what builds NAME; build(i, name): its entry (None: skipped).
    Writes OUT/models.json and returns the entries."""
    os.makedirs(out, exist_ok=True)
    manifest = []
    for i, name in enumerate(names):
        src = source(name)
        entry_path = os.path.join(out, name + ".json")
        if os.path.exists(entry_path) and os.path.exists(os.path.join(out, name + ".onnx")):
            with open(entry_path) as f:
                entry = json.load(f)
            if entry.get("rows") == rows and entry.get("source") == src:
                manifest.append(entry)
                continue
        print("building %s ..." % name, file=sys.stderr)
        entry = build(i, name)
        if entry is None:
            continue
        entry["source"] = src
        with open(entry_path, "w") as f:
            json.dump(entry, f)
        manifest.append(entry)
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest
