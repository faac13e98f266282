#!/usr/bin/env bash
# End-to-end tests of `vigil train`: versions in the model repository, config.json contents,
# ONNX validity (onnx.checker), determinism across thread counts, holdout accuracy, `vigil run` on
# the result, --json, the bad-input table (exit 1, message naming file/line/column, repository
# untouched), usage errors, and interrupts (SIGINT/SIGTERM leave no temporary directory; stale
# ones from dead runs are removed).
#
# Usage: test_train.sh PATH/TO/vigil WORK_DIR SOURCE_DIR PATH/TO/slow_fsync.so
set -u

VIGIL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # the tests cd into WORK
WORK=$2
SRC=$(cd "$3" && pwd)
SLOW_FSYNC=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
PY=/usr/bin/python3
# Every vigil run gets its own time limit, so one hang fails that check instead of the suite.
T="timeout -k 5 120"
VG_TEST_TIMEOUT=$T
# shellcheck source=../lib.sh
. "$SRC/tests/lib.sh"

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1
WORK=$(pwd)

IRIS=$SRC/data/iris.csv
if [ ! -s "$IRIS" ]; then
    # The data set is committed; regenerate it only if this tree lacks it.
    IRIS=$WORK/iris.csv
    if ! "$PY" "$SRC/scripts/make_iris_csv.py" "$IRIS" || [ ! -s "$IRIS" ]; then
        echo "FAIL: no data/iris.csv and it cannot be generated" >&2
        exit 1
    fi
fi


expect_out() {
    if grep -Eq -- "$1" out.txt; then ok; else
        bad "$2: stdout lacks /$1/: $(head -c 300 out.txt)"
    fi
}

# pycheck NAME SCRIPT [ARGS...]: runs python; the script raises on a mismatch.
pycheck() {
    local name=$1 script=$2
    shift 2
    if "$PY" -c "$script" "$@" >py.txt 2>&1; then ok; else
        bad "$name: $(tail -3 py.txt)"
    fi
}

# listing DIR: every path under DIR with size and mtime, or "absent".
listing() {
    if [ -e "$1" ]; then find "$1" -printf '%p %s %T@\n' | sort; else echo absent; fi
}

# ---- data sets ------------------------------------------------------------------------------
"$PY" - <<'EOF' || { echo "FAIL: cannot generate data sets" >&2; exit 1; }
import numpy as np
from sklearn.datasets import make_classification, make_regression
x, y = make_classification(n_samples=1500, n_features=8, n_informative=5, n_classes=3,
                           random_state=7)
with open("synth_cls.csv", "w") as f:
    f.write(",".join("f%d" % i for i in range(8)) + ",label\n")
    for row, c in zip(x, y):
        f.write(",".join("%.6g" % v for v in row) + ",%d\n" % (c * 10))
x, y = make_regression(n_samples=800, n_features=5, noise=5.0, random_state=3)
with open("synth_reg.csv", "w") as f:
    f.write("a,b,c,d,e,target\n")
    for row, t in zip(x, y):
        f.write(",".join("%.6g" % v for v in row) + ",%.6g\n" % t)
# Big enough that training 3000 trees on one thread takes seconds: the interrupt tests.
rng = np.random.default_rng(1)
x = rng.normal(size=(20000, 10)).astype(np.float32)
y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
with open("big.csv", "w") as f:
    f.write(",".join("x%d" % i for i in range(10)) + ",y\n")
    for row, c in zip(x, y):
        f.write(",".join("%.5g" % v for v in row) + ",%s\n" % ("yes" if c else "no"))
np.save("iris_in.npy", np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32))
EOF

# ---- train iris twice: versions 1 then 2 ----------------------------------------------------
R=$WORK/repo
expect_status 0 "train iris" -- "$VIGIL" train --data "$IRIS" --target species --name iris \
    --repo "$R" --seed 42 --description "test model"
expect_out "accuracy" "train iris: table"
expect_out "setosa +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+" "train iris: per-class row"
expect_out "Confusion matrix" "train iris: confusion matrix"
expect_out "$R/iris/1" "train iris: path"
[ -s "$R/iris/1/model.onnx" ] && [ -s "$R/iris/1/config.json" ] && [ -s "$R/iris/config.json" ] &&
    ok || bad "version 1 files missing"
[ -s err.txt ] && bad "stderr not empty without a terminal: $(head -c 200 err.txt)" || ok

expect_status 0 "train iris again" -- "$VIGIL" train --data "$IRIS" --target species \
    --name iris --repo "$R" --json
[ -d "$R/iris/2" ] && ok || bad "version 2 missing"
cmp -s "$R/iris/config.json" "$R/iris/2/config.json" && ok ||
    bad "iris/config.json is not a copy of version 2's"
cmp -s "$R/iris/1/model.onnx" "$R/iris/2/model.onnx" && ok ||
    bad "same data and seed gave different model.onnx bytes"
[ -z "$(find "$R" -name '.tmp-*')" ] && ok || bad "temporary entries left: $(find "$R" -name '.tmp-*')"
pycheck "--json output" '
import json, sys
o = json.load(open("out.txt"))
assert o["name"] == "iris" and o["version"] == 2, o
assert o["path"].endswith("/iris/2"), o["path"]
assert o["task"] == "classification"
assert o["classes"] == ["setosa", "versicolor", "virginica"], o["classes"]
assert o["training_rows"] + o["holdout_rows"] == 150
m = o["metrics"]
assert m["accuracy"] >= 0.9, m
cfg = json.load(open(sys.argv[1]))
assert m == cfg["metrics"], "--json metrics differ from config.json"
' "$R/iris/2/config.json"

pycheck "config.json schema" '
import json, math, re, sys
c = json.load(open(sys.argv[1] + "/iris/1/config.json"))
top = json.load(open(sys.argv[1] + "/iris/config.json"))
assert top["version"] == 2 and c["version"] == 1, (top["version"], c["version"])
assert c["schema_version"] == 1
assert c["name"] == "iris" and c["description"] == "test model"
assert c["task"] == "classification" and c["platform"] == "onnx"
assert c["model_file"] == "model.onnx"
assert c["input"] == {"name": "input", "datatype": "FP32", "shape": [-1, 4]}, c["input"]
assert c["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
assert c["classes"] == ["setosa", "versicolor", "virginica"]
assert c["outputs"]["label"] == {"name": "label", "datatype": "BYTES", "shape": [-1]}
assert c["outputs"]["probabilities"] == {"name": "probabilities", "datatype": "FP32",
                                         "shape": [-1, 3]}
t = c["training"]
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t["created"]), t["created"]
assert t["data_file"].endswith("iris.csv") and t["target"] == "species"
assert t["rows"] == 150 and t["training_rows"] == 120 and t["holdout_rows"] == 30, t
assert t["test_size"] == 0.2 and t["seed"] == 42 and t["impute"] == "none"
assert t["training_seconds"] >= 0
h = t["hyperparameters"]
assert h == {"trees": 100, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt",
             "criterion": "gini", "bootstrap": True}, h
m = c["metrics"]
assert m["holdout_rows"] == 30 and m["accuracy"] >= 0.9, m
assert set(m["per_class"]) == set(c["classes"])
for k, v in m["per_class"].items():
    assert set(v) == {"precision", "recall", "f1", "support"} and v["support"] == 10, (k, v)
cm = m["confusion_matrix"]
assert len(cm) == 3 and all(len(r) == 3 for r in cm) and sum(map(sum, cm)) == 30
assert abs(sum(cm[i][i] for i in range(3)) / 30 - m["accuracy"]) < 1e-12
r = c["reference"]
assert r["rows"] == 120 and r["bins"] == 10
assert list(r["features"]) == c["features"]
for name, f in r["features"].items():
    assert len(f["bin_edges"]) == 11 and len(f["bin_shares"]) == 10, name
    assert f["bin_edges"] == sorted(f["bin_edges"])
    assert f["bin_edges"][0] == f["min"] and f["bin_edges"][-1] == f["max"]
    assert abs(sum(f["bin_shares"]) - 1) < 1e-9 and f["below"] == 0 and f["above"] == 0
    assert f["min"] <= f["mean"] <= f["max"] and f["std"] > 0
cd = r["class_distribution"]
assert list(cd) == c["classes"] and abs(sum(cd.values()) - 1) < 1e-12, cd
' "$R"

pycheck "onnx.checker on model.onnx" '
import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
ops = [n.op_type for n in m.graph.node]
assert "TreeEnsembleClassifier" in ops, ops
' "$R/iris/1/model.onnx"

expect_status 0 "vigil run on the trained model" -- "$VIGIL" run "$R/iris/1/model.onnx" \
    --input input=iris_in.npy
pycheck "vigil run output" '
import json
o = json.load(open("out.txt"))["outputs"]
assert o["label"]["data"] == ["setosa", "virginica"], o["label"]
p = o["probabilities"]["data"]
assert len(p) == 6 and abs(sum(p[:3]) - 1) < 1e-5, p
'

# Progress bar: drawn on stderr when it is a terminal (script(1) gives the run a pseudo-terminal).
script -qec "$VIGIL train --data '$IRIS' --target species --name iris --repo '$WORK/pty'" \
    /dev/null >pty.txt 2>&1 </dev/null
grep -q "100/100 trees  elapsed" pty.txt && ok || bad "no progress bar on a terminal: $(head -c 300 pty.txt)"

# ---- determinism: thread counts give byte-identical models ---------------------------------
for th in 1 2 3; do
    expect_status 0 "synthetic classification --threads $th" -- "$VIGIL" train \
        --data synth_cls.csv --target label --name det --repo "$WORK/det$th" --trees 40 \
        --threads "$th" --seed 9 --criterion entropy --max-features 0.5
done
cmp -s "$WORK/det1/det/1/model.onnx" "$WORK/det2/det/1/model.onnx" && ok ||
    bad "--threads 1 and --threads 2 models differ"
cmp -s "$WORK/det1/det/1/model.onnx" "$WORK/det3/det/1/model.onnx" && ok ||
    bad "--threads 1 and --threads 3 models differ"
expect_status 0 "iris --threads 2" -- "$VIGIL" train --data "$IRIS" --target species \
    --name iris --repo "$WORK/iris_t2" --threads 2
expect_status 0 "iris --threads 1" -- "$VIGIL" train --data "$IRIS" --target species \
    --name iris --repo "$WORK/iris_t1" --threads 1
cmp -s "$WORK/iris_t1/iris/1/model.onnx" "$WORK/iris_t2/iris/1/model.onnx" && ok ||
    bad "iris: --threads 1 and --threads 2 models differ"
expect_status 0 "different seed" -- "$VIGIL" train --data synth_cls.csv --target label \
    --name det --repo "$WORK/det1" --trees 40 --threads 2 --seed 10 --criterion entropy \
    --max-features 0.5
cmp -s "$WORK/det1/det/1/model.onnx" "$WORK/det1/det/2/model.onnx" && bad "seed has no effect" || ok
pycheck "synthetic classification config" '
import json, onnx, sys
c = json.load(open(sys.argv[1] + "/det/1/config.json"))
assert c["classes"] == ["0", "10", "20"], c["classes"]
assert c["outputs"]["label"]["datatype"] == "INT64"
h = c["training"]["hyperparameters"]
assert h["criterion"] == "entropy" and h["max_features"] == "fraction", h
assert h["max_features_value"] == 0.5 and h["trees"] == 40
assert c["metrics"]["accuracy"] > 0.6, c["metrics"]
assert c["training"]["seed"] == 9
onnx.checker.check_model(onnx.load(sys.argv[1] + "/det/1/model.onnx"), full_check=True)
' "$WORK/det1"

# ---- regression ------------------------------------------------------------------------------
expect_status 0 "regression" -- "$VIGIL" train --data synth_reg.csv --target target --name reg \
    --repo "$R" --trees 30 --max-depth 8 --min-samples-leaf 2 --bootstrap off --test-size 0.25
expect_out "R2" "regression: table"
pycheck "regression config" '
import json, onnx, sys
c = json.load(open(sys.argv[1] + "/reg/1/config.json"))
assert c["task"] == "regression" and c["classes"] == []
assert c["outputs"] == {"value": {"name": "variable", "datatype": "FP32", "shape": [-1, 1]}}
m = c["metrics"]
assert set(m) == {"holdout_rows", "r2", "mae", "rmse"} and m["holdout_rows"] == 200, m
assert m["r2"] > 0.5 and 0 < m["mae"] <= m["rmse"], m
h = c["training"]["hyperparameters"]
assert h == {"trees": 30, "max_depth": 8, "min_samples_leaf": 2, "max_features": "all",
             "criterion": "squared_error", "bootstrap": False}, h
assert c["reference"]["class_distribution"] == {}
onnx.checker.check_model(onnx.load(sys.argv[1] + "/reg/1/model.onnx"), full_check=True)
' "$R"
expect_status 0 "regression --json" -- "$VIGIL" train --data synth_reg.csv --target target \
    --name reg --repo "$R" --trees 5 --json
pycheck "regression --json" '
import json
o = json.load(open("out.txt"))
assert o["version"] == 2 and o["classes"] == [] and "r2" in o["metrics"], o
'
expect_status 0 "--test-size 0" -- "$VIGIL" train --data "$IRIS" --target species \
    --name all --repo "$R" --test-size 0 --trees 5 --json
pycheck "--test-size 0: no metrics" '
import json
o = json.load(open("out.txt"))
assert o["metrics"] is None and o["holdout_rows"] == 0 and o["training_rows"] == 150, o
'

# ---- bad input: exit 1, file/line/column in the message, nothing written --------------------
printf 'a,b,y\n1,2,x\n3,4\n5,6,z\n' >ragged.csv
printf 'a,b,y\n1,2,x\n3,zz,y\n' >nonnum.csv
printf 'a,b,y\n1,2,x\n3,4,x\n' >oneclass.csv
: >empty.csv
printf 'a,b,y\n' >header.csv
printf 'a,b,y\n1,2,x\n3,nan,y\n5,6,x\n7,8,y\n' >nan.csv
printf 'a,b,y\n1,2,x\n3,,y\n5,6,x\n7,8,y\n' >emptycell.csv
printf 'a,a,y\n1,2,x\n3,4,y\n' >dup.csv
printf 'a,b,y\n1,2,x\n3,4,y\n' >good.csv

before_r=$(listing "$R")
before_new=$(listing "$WORK/never")
# bad_case NAME FILE PATTERN [EXTRA ARGS...]
bad_case() {
    local name=$1 file=$2 pattern=$3
    shift 3
    for repo in "$R" "$WORK/never"; do
        expect_status 1 "$name" -- "$VIGIL" train --data "$file" --target y --name iris \
            --repo "$repo" "$@"
        expect_err "$file" "$name: file named"
        expect_err "$pattern" "$name: message"
    done
    [ "$(listing "$R")" = "$before_r" ] && ok || bad "$name: the repository changed"
    [ "$(listing "$WORK/never")" = "$before_new" ] && ok || bad "$name: a repository was created"
}
bad_case "ragged row" ragged.csv "line 3, column 'y'"
bad_case "non-numeric feature" nonnum.csv "line 3, column 'b'.*'zz'"
bad_case "missing target" nonnum.csv "no column 'q'" --target q
bad_case "one-class target" oneclass.csv "column 'y'.*one class"
bad_case "empty file" empty.csv "empty"
bad_case "header only" header.csv "only a header"
bad_case "NaN cell" nan.csv "line 3, column 'b'.*NaN"
bad_case "empty cell" emptycell.csv "line 3, column 'b'.*empty"
bad_case "duplicate column" dup.csv "line 1, column 'a'.*duplicate"
bad_case "target as a feature" good.csv "column 'y'.*target" --features a,y
bad_case "missing data file" missing.csv "missing.csv"
expect_status 0 "--impute mean fills NaN" -- "$VIGIL" train --data nan.csv --target y \
    --name imp --repo "$WORK/imp" --impute mean --test-size 0
expect_status 0 "--impute median fills empty cells" -- "$VIGIL" train --data emptycell.csv \
    --target y --name imp --repo "$WORK/imp" --impute median --test-size 0

# ---- usage errors: exit 2 ---------------------------------------------------------------------
expect_status 2 "no --name" -- "$VIGIL" train --data "$IRIS" --target species
expect_status 2 "bad name" -- "$VIGIL" train --data "$IRIS" --target species --name ../x
expect_status 2 "bad --max-features" -- "$VIGIL" train --data "$IRIS" --target species \
    --name x --max-features 1.5
expect_status 2 "bad --trees" -- "$VIGIL" train --data "$IRIS" --target species --name x \
    --trees 0
expect_status 2 "bad --test-size" -- "$VIGIL" train --data "$IRIS" --target species --name x \
    --test-size 1
expect_status 2 "gini for regression" -- "$VIGIL" train --data synth_reg.csv --target target \
    --name x --criterion gini --repo "$WORK/never"
[ -e "$WORK/never" ] && bad "usage error created the repository" || ok
for opt in "--task linear" "--criterion mse" "--bootstrap yes" "--impute zero"; do
    set -- $opt
    expect_status 2 "bad $1" -- "$VIGIL" train --data "$IRIS" --target species --name x "$1" "$2"
    expect_err "$1: '$2' is not" "bad $1 names the value"
done
expect_err "'zero' is not mean or median" "--impute lists the choices"
expect_status 0 "train --help" -- "$VIGIL" train --help
expect_out "--max-features" "train --help"

# ---- interrupts ---------------------------------------------------------------------------------
# SIGINT / SIGTERM while training: the process ends, nothing is left in the repository.
# Commands started with & in a non-interactive shell inherit SIGINT ignored; env restores it.
SIGDFL="env --default-signal=INT,TERM"
IR=$WORK/irepo
for sig in INT TERM; do
    rm -rf "$IR"
    mkdir -p "$IR"
    $SIGDFL "$VIGIL" train --data big.csv --target y --name big --repo "$IR" --trees 3000 \
        --threads 1 >/dev/null 2>err.txt &
    pid=$!
    sleep 2
    if kill -0 "$pid" 2>/dev/null; then ok; else bad "SIG$sig: training ended before the signal"; fi
    kill -s "$sig" "$pid"
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        bad "SIG$sig: vigil train still running"
        kill -9 "$pid"
    else
        ok
    fi
    wait "$pid" 2>/dev/null
    st=$?
    [ $st -gt 128 ] && ok || bad "SIG$sig: exit status $st, expected death by signal"
    [ -z "$(ls -A "$IR")" ] && ok || bad "SIG$sig during training left: $(find "$IR")"
done

# Interrupts at many moments of short runs, the write phase included: every version directory
# present is complete and no temporary entry survives.
rm -rf "$IR"
for delay in 0.01 0.02 0.03 0.04 0.05 0.06 0.08 0.1 0.12 0.15 0.2 0.25 0.3; do
    $SIGDFL "$VIGIL" train --data synth_cls.csv --target label --name s --repo "$IR" --trees 10 \
        --threads 1 >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -INT "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
leftover=$(find "$IR" -name '.tmp-*' 2>/dev/null)
[ -z "$leftover" ] && ok || bad "interrupted runs left temporary entries: $leftover"
for d in "$IR"/s/[0-9]*; do
    [ -d "$d" ] || continue
    [ -s "$d/model.onnx" ] && [ -s "$d/config.json" ] && ok || bad "incomplete version $d"
done

# Interrupts inside the write phase (fsync slowed to 0.4 s by the preload shim; the write phase
# makes 3 fsyncs before the rename, so the rename happens about 1.2 s after training, which takes
# well under 0.2 s here): before the rename the version is cancelled, after it the version is
# complete; either way the process dies of the signal and no .tmp-* is left.
# (verify_asan_link_order: the shim is preloaded ahead of the sanitizer runtime in ASan builds.)
[ -f "$SLOW_FSYNC" ] || bad "no fsync shim at $SLOW_FSYNC"
for delay in 0.6 1.0 1.9 2.6; do
    rm -rf "$IR"
    LD_PRELOAD=$SLOW_FSYNC ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        $SIGDFL "$VIGIL" train --data synth_cls.csv --target label --name s --repo "$IR" \
        --trees 5 --threads 2 >out.txt 2>err.txt &
    pid=$!
    sleep "$delay"
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    st=$?
    [ $st -eq 130 ] && ok || bad "SIGINT after ${delay}s of writing: exit $st, expected 130: $(head -c 300 err.txt)"
    leftover=$(find "$IR" -name '.tmp-*' 2>/dev/null)
    [ -z "$leftover" ] && ok || bad "SIGINT after ${delay}s of writing left $leftover"
    if [ -d "$IR/s/1" ]; then
        [ -s "$IR/s/1/model.onnx" ] && [ -s "$IR/s/1/config.json" ] && ok ||
            bad "SIGINT after ${delay}s of writing: incomplete version"
        [ "$delay" != 0.6 ] && ok || bad "SIGINT during the first fsync did not cancel the version"
    else
        grep -q "interrupted by signal" err.txt && ok || bad "no 'interrupted' message: $(head -c 300 err.txt)"
        [ -z "$(ls -A "$IR")" ] && ok || bad "cancelled version left: $(find "$IR")"
        [ "$delay" != 2.6 ] && ok || bad "SIGINT after the rename cancelled the version"
    fi
done

# A temporary directory abandoned by a dead process (SIGKILL) is removed by the next run; one
# whose process is alive is left alone.
sh -c 'exit 0' &
dead=$!
wait "$dead"
mkdir -p "$R/iris/.tmp-9-$dead"
echo partial >"$R/iris/.tmp-9-$dead/model.onnx"
mkdir -p "$R/iris/.tmp-8-$$"
expect_status 0 "train after a killed run" -- "$VIGIL" train --data "$IRIS" --target species \
    --name iris --repo "$R" --trees 5
[ ! -e "$R/iris/.tmp-9-$dead" ] && ok || bad "stale temporary directory not removed"
[ -d "$R/iris/.tmp-8-$$" ] && ok || bad "a live process's temporary directory was removed"
[ -d "$R/iris/3" ] && ok || bad "version 3 missing"
rmdir "$R/iris/.tmp-8-$$"

finish train
