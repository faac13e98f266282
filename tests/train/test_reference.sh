#!/usr/bin/env bash
# End-to-end tests of `vigil reference` (docs/reference.md): the reference it computes for a model
# `vigil train` made equals the one training wrote for the same rows; the class distribution is
# that of the model's predictions (checked against `vigil run` and scikit-learn); every other key
# of config.json is unchanged; imported scikit-learn models (string, ZipMap, INT64 labels, argmax
# of probabilities, a regressor) get a reference the server and `vigil load` then use; errors
# (missing column, unknown model or version, bad CSV, bad config, a model that fails) leave
# config.json byte for byte as it was; usage errors exit 2.
#
# Usage: test_reference.sh PATH/TO/vigil WORK_DIR SOURCE_DIR
# Needs /usr/bin/python3 with numpy, scikit-learn and onnx, jq and curl.
set -u

VIGIL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # the tests cd into WORK
WORK=$2
SRC=$(cd "$3" && pwd)
PY=/usr/bin/python3
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout -k 5 120"
# shellcheck source=../lib.sh
. "$SRC/tests/lib.sh"
# shellcheck source=../server/common.sh
. "$SRC/tests/server/common.sh"

unset "${!VIGIL_@}"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1
IRIS=$SRC/data/iris.csv

expect_out() {
    if grep -Eq -- "$1" out.txt; then ok; else
        bad "$2: stdout lacks /$1/: $(head -c 300 out.txt)"
    fi
}
# jcheck NAME FILTER FILE [JQ ARGS...]: jq -e FILTER holds on FILE
jcheck() {
    local name=$1 filter=$2 file=$3
    shift 3
    if jq -e "$@" "$filter" "$file" >/dev/null 2>jq.err; then ok; else
        bad "$name: $file fails jq '$filter' $(head -c 200 jq.err)"
    fi
}
# same NAME A B: files A and B are byte-identical
same() {
    if cmp -s "$2" "$3"; then ok; else bad "$1: $2 and $3 differ"; fi
}
# snapshot DIR: every file under DIR with its checksum (for "nothing changed")
snapshot() {
    find "$1" -type f -print0 | sort -z | xargs -0 sha256sum
}
# no_tmp DIR: no temporary entry left anywhere under DIR
no_tmp() {
    if [ -z "$(find "$1" -name '.tmp-*')" ]; then ok; else
        bad "temporary entries left: $(find "$1" -name '.tmp-*' | head -3)"
    fi
}
# drop_reference FILE...: removes "reference" from each config.json (as an imported model lacks)
drop_reference() {
    local f
    for f in "$@"; do
        jq 'del(.reference)' "$f" >"$f.new" && mv "$f.new" "$f"
    done
}
# counts_of_run MODEL NPY: {class: count} of the label output of `vigil run`
counts_of_run() {
    "$VIGIL" run "$1" --input "input=$2" |
        jq -c '.outputs.label.data | group_by(.) | map({(.[0] | tostring): length}) | add'
}

if ! "$PY" "$SRC/tests/train/make_reference_models.py" "$SRC" gen >gen.log 2>&1; then
    echo "FAIL: make_reference_models.py: $(tail -3 gen.log)" >&2
    exit 1
fi

# ---- help and usage errors -----------------------------------------------------------------------
expect_status 0 "reference --help" -- "$VIGIL" reference --help
for opt in --model --data --repo --version --target --impute --json "Exit status" \
    "predictions"; do
    if grep -q -- "$opt" out.txt; then ok; else bad "reference --help lacks '$opt'"; fi
done
expect_status 0 "vigil --help" -- "$VIGIL" --help
expect_out "^  reference " "vigil --help lists reference"
while IFS='|' read -r name args; do
    [ -z "$name" ] && continue
    read -r -a argv <<<"$args"
    expect_status 2 "usage: $name" -- "$VIGIL" reference "${argv[@]}" &&
        expect_err "^vigil reference: " "usage: $name message"
done <<EOF
no arguments|
no data|--model iris
no model|--data $IRIS
bad model name|--model ../x --data $IRIS
version zero|--model iris --data $IRIS --version 0
version not a number|--model iris --data $IRIS --version two
bad impute|--model iris --data $IRIS --impute mode
unknown option|--model iris --data $IRIS --frobnicate
stray argument|--model iris --data $IRIS extra
missing value|--model iris --data
empty repo|--model iris --data $IRIS --repo=
EOF

# ---- a model vigil trained: the same rows give the same reference ---------------------------------
# --test-size 0: the training rows are every row of data/iris.csv, in file order, so the reference
# `vigil reference` computes on that file must be the one training wrote, to the byte; the class
# distribution then differs only if the forest mispredicts a training row, which it does not.
"$VIGIL" train --data "$IRIS" --target species --name iris --repo all --test-size 0 >train.log 2>&1 ||
    bad "train iris --test-size 0: $(tail -3 train.log)"
cp all/iris/1/config.json trained.json
drop_reference all/iris/1/config.json all/iris/config.json
jcheck "reference removed" 'has("reference") | not' all/iris/1/config.json
expect_status 0 "reference of iris (all rows)" -- "$VIGIL" reference --repo all --model iris \
    --data "$IRIS"
expect_out "^Reference of 'iris' version 1 from .*: 150 rows, 4 features" "text report"
expect_out "setosa +0.3333 +50 rows" "text report: predicted classes"
expect_out "and its copy" "text report: the model-level copy"
same "reference == training's, whole config.json" trained.json all/iris/1/config.json
same "model-level config.json is the version's copy" all/iris/1/config.json all/iris/config.json
jcheck "features equal training's (edges, shares, moments)" \
    '.reference.features == $t[0].reference.features and .reference.rows == 150' \
    all/iris/1/config.json --slurpfile t trained.json
no_tmp all

# ---- the default holdout: 120 training rows; the reference of all 150 rows differs -----------------
"$VIGIL" train --data "$IRIS" --target species --name iris --repo held >train.log 2>&1 ||
    bad "train iris: $(tail -3 train.log)"
cp held/iris/1/config.json held.json
expect_status 0 "reference of iris (holdout model) --json --target" -- "$VIGIL" reference \
    --repo held --model iris --data "$IRIS" --target species --json
cp out.txt held-report.json
jcheck "only reference changed" 'del(.reference) == ($h[0] | del(.reference))' \
    held/iris/1/config.json --slurpfile h held.json
# outside "reference", a file vigil wrote keeps its bytes
diff <(jq 'del(.reference)' held.json) <(jq 'del(.reference)' held/iris/1/config.json) >/dev/null &&
    ok || bad "holdout model: keys other than reference changed"
jcheck "rows 150 (training wrote 120)" \
    '.reference.rows == 150 and $h[0].reference.rows == 120' held/iris/1/config.json \
    --slurpfile h held.json
jcheck "bin edges: min and max of all rows" \
    '.reference.features.petal_length.bin_edges | (first - 1 | fabs) < 1e-6 and (last - 6.9 | fabs) < 1e-6' \
    held/iris/1/config.json
run_counts=$(counts_of_run held/iris/1/model.onnx gen/iris_x.npy)
jcheck "class distribution == vigil run's predictions / 150" \
    '.reference.class_distribution | to_entries | all(.value == (($c[.key] // 0) / 150))' \
    held/iris/1/config.json \
    --argjson c "$run_counts"
jcheck "--json: class distribution, rows, version" \
    '.class_distribution == $c[0].reference.class_distribution and .rows == 150 and .version == 1 and .wrote_model_config' \
    held-report.json --slurpfile c held/iris/1/config.json
# --target: the accuracy of vigil run's labels against the species column
run_acc=$("$VIGIL" run held/iris/1/model.onnx --input input=gen/iris_x.npy |
    jq --rawfile csv "$IRIS" '($csv | split("\n") | map(select(length > 0)) | .[1:] | map(split(",") | last)) as $truth
        | [.outputs.label.data, $truth] | transpose | map(select(.[0] == .[1])) | length / 150')
jcheck "--target: accuracy == vigil run's" '(.accuracy - $a) | fabs < 1e-12' held-report.json \
    --argjson a "$run_acc"
no_tmp held

# --version: an older version; the model-level copy (of the newest) stays as it was
"$VIGIL" train --data "$IRIS" --target species --name iris --repo held --seed 7 >train.log 2>&1 ||
    bad "train iris version 2: $(tail -3 train.log)"
cp held/iris/config.json top-before.json
cp held/iris/2/config.json v2-before.json
drop_reference held/iris/1/config.json
expect_status 0 "reference --version 1" -- "$VIGIL" reference --repo held --model iris \
    --version 1 --data "$IRIS" --json
jcheck "--version 1: not the newest, copy not written" '.version == 1 and (.wrote_model_config | not)' out.txt
jcheck "--version 1: reference back" '.reference.rows == 150' held/iris/1/config.json
same "--version 1: model-level config.json untouched" top-before.json held/iris/config.json
same "--version 1: version 2 untouched" v2-before.json held/iris/2/config.json
expect_status 0 "reference of the newest (default)" -- "$VIGIL" reference --repo held --model iris \
    --data "$IRIS" --json
jcheck "default version is the newest" '.version == 2 and .wrote_model_config' out.txt
same "version 2 and the model-level copy" held/iris/2/config.json held/iris/config.json

# ---- errors leave config.json byte for byte as it was --------------------------------------------
"$PY" - "$IRIS" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
head, rows = lines[0].split(","), [l.split(",") for l in lines[1:]]
def write(name, header, body):
    with open(name, "w") as f:
        f.write(",".join(header) + "\n")
        for r in body:
            f.write(",".join(r) + "\n")
keep = [i for i, h in enumerate(head) if h != "petal_width"]
write("no_petal_width.csv", [head[i] for i in keep], [[r[i] for i in keep] for r in rows])
bad = [list(r) for r in rows]
bad[4][1] = "abc"
write("not_number.csv", head, bad)
write("ragged.csv", head, rows[:3] + [rows[3][:2]] + rows[4:])
nan = [list(r) for r in rows]
nan[6][2] = ""
write("empty_cell.csv", head, nan)
write("header_only.csv", head, [])
EOF
printf '' >empty.csv
snapshot held >before.sum
while IFS='|' read -r name want pattern args; do
    [ -z "$name" ] && continue
    read -r -a argv <<<"$args"
    expect_status "$want" "error: $name" -- "$VIGIL" reference --repo held "${argv[@]}" &&
        expect_err "$pattern" "error: $name message"
    snapshot held >after.sum
    if cmp -s before.sum after.sum; then ok; else bad "error: $name changed the repository"; fi
done <<EOF
missing column|1|no_petal_width.csv: line 1: no column 'petal_width' for feature 4|--model iris --data no_petal_width.csv
unknown model|1|no model 'nosuch' in held|--model nosuch --data $IRIS
unknown version|1|model 'iris' has no version 9|--model iris --version 9 --data $IRIS
non-numeric cell|1|not_number.csv: line 6, column 'sepal_width' \\(2\\): 'abc' is not a number|--model iris --data not_number.csv
ragged row|1|ragged.csv: line 5, column 'petal_length' \\(3\\): missing|--model iris --data ragged.csv
empty cell|1|empty_cell.csv: line 8, column 'petal_length' \\(3\\): empty value|--model iris --data empty_cell.csv
header only|1|header_only.csv: only a header|--model iris --data header_only.csv
empty file|1|empty.csv: the file is empty|--model iris --data empty.csv
no such file|1|nosuch.csv: cannot open|--model iris --data nosuch.csv
no target column|1|no column 'kind' for the target|--model iris --data $IRIS --target kind
EOF
no_tmp held
# --impute fills the empty cell instead
cp -r held imputed
expect_status 0 "--impute mean" -- "$VIGIL" reference --repo imputed --model iris --data empty_cell.csv \
    --impute mean
jcheck "--impute mean: 150 rows" '.reference.rows == 150' imputed/iris/config.json

# bad repositories: config.json not JSON, a config without features, a model that does not load,
# a label that is not one of config.json's classes, an input the graph lacks
mkdir -p bad
for m in notjson nofeatures broken badclasses badinput; do
    mkdir -p "bad/$m/1"
    cp held/iris/1/model.onnx "bad/$m/1/model.onnx"
    jq --arg m "$m" '.name = $m' held/iris/1/config.json >"bad/$m/1/config.json"
done
printf '{"schema_version": 1, "task": ' >bad/notjson/1/config.json
jq 'del(.features)' bad/nofeatures/1/config.json >x.json && mv x.json bad/nofeatures/1/config.json
printf 'not a model' >bad/broken/1/model.onnx
jq '.classes = ["a", "b", "c"]' bad/badclasses/1/config.json >x.json && mv x.json bad/badclasses/1/config.json
jq '.input.name = "features"' bad/badinput/1/config.json >x.json && mv x.json bad/badinput/1/config.json
snapshot bad >before.sum
while IFS='|' read -r m pattern; do
    [ -z "$m" ] && continue
    expect_status 1 "bad: $m" -- "$VIGIL" reference --repo bad --model "$m" --data "$IRIS" &&
        expect_err "$pattern" "bad: $m message"
done <<'EOF'
notjson|bad/notjson/1/config.json: not a JSON object
nofeatures|'features' must be a non-empty array
broken|cannot load model
badclasses|predicted class '(setosa|versicolor|virginica)', which is not one of the "classes"
badinput|names input 'features'
EOF
snapshot bad >after.sum
same "bad repositories unchanged" before.sum after.sum
no_tmp bad

# ---- imported scikit-learn models (hand-written config.json without a reference) ------------------
R=gen/repo
cp "$R/imported/1/config.json" imported-before.json
for m in imported imported_argmax imported_int; do
    jcheck "$m: no reference yet" 'has("reference") | not' "$R/$m/1/config.json"
    expect_status 0 "reference of $m" -- "$VIGIL" reference --repo "$R" --model "$m" \
        --data "$IRIS" --json
    cp out.txt "$m.report"
    jcheck "$m: reference with 150 rows and every feature" \
        '.reference.rows == 150 and .reference.bins == 10 and (.reference.features | keys | sort) == (.features | sort)' \
        "$R/$m/1/config.json"
    jcheck "$m: class distribution in the classes' order" \
        '(.reference.class_distribution | keys_unsorted) == .classes' "$R/$m/1/config.json"
    jcheck "$m: class distribution == scikit-learn's predictions" \
        '.reference.class_distribution == ($e[0][$m].counts | map_values(. / 150))' \
        "$R/$m/1/config.json" --slurpfile e gen/expected.json --arg m "${m%_argmax}"
    same "$m: model-level copy created" "$R/$m/1/config.json" "$R/$m/config.json"
done
jcheck "imported: every other key keeps its value" \
    'del(.reference) == $b[0]' "$R/imported/1/config.json" --slurpfile b imported-before.json
jcheck "imported: the features' reference follows config.json's feature order" \
    '(.reference.features | keys_unsorted) == .features' "$R/imported/1/config.json"
jcheck "imported: sepal_length moments as numpy's" \
    '.reference.features.sepal_length | (.mean - 5.843333333333334 | fabs) < 1e-6 and (.std - 0.8253012917851409 | fabs) < 1e-6 and (.min - 4.3 | fabs) < 1e-6 and (.max - 7.9 | fabs) < 1e-6' \
    "$R/imported/1/config.json"
# config.json's feature order: petal_width, sepal_length, petal_length, sepal_width
"$PY" -c "
import numpy as np
np.save('iris_x_imported.npy', np.ascontiguousarray(np.load('gen/iris_x.npy')[:, [3, 0, 2, 1]]))"
run_counts=$(counts_of_run "$R/imported/1/model.onnx" iris_x_imported.npy)
jcheck "imported: class distribution == vigil run's labels" \
    '.reference.class_distribution | to_entries | all(.value == (($c[.key] // 0) / 150))' \
    "$R/imported/1/config.json" \
    --argjson c "$run_counts"
expect_status 0 "imported_reg with --target" -- "$VIGIL" reference --repo "$R" --model imported_reg \
    --data gen/reg.csv --target y --json
jcheck "imported_reg: no class distribution, MAE as scikit-learn's" \
    '.class_distribution == {} and (.mae - $e[0].imported_reg.mae | fabs) < 1e-4' out.txt \
    --slurpfile e gen/expected.json
jcheck "imported_reg: reference of 300 rows, {} classes" \
    '.reference.rows == 300 and .reference.class_distribution == {} and (.reference.features | keys) == ["x1","x2","x3"]' \
    "$R/imported_reg/1/config.json"
no_tmp gen

# the server serves them with their new reference, and `vigil load` draws rows from it
server_start srv --host 127.0.0.1 --port 0 --models "$R" || {
    finish reference
    exit 1
}
for m in imported imported_argmax imported_int imported_reg; do
    req GET "/models/$m"
    if [ "$STATUS" = 200 ] && jq -e '.reference.features | length > 0' resp.body >/dev/null; then ok; else
        bad "GET /models/$m: $STATUS, reference $(head -c 200 resp.body)"
    fi
    expect_status 0 "vigil load on $m" -- "$VIGIL" load --url "$SERVER_URL" --model "$m" \
        --rate 200 --duration 0.5s --connections 4 --json
    jcheck "vigil load on $m: every answer right" '.ok == .sent and .sent == 100' out.txt
done
server_stop
expect_eq "server exit status" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log"

finish reference
