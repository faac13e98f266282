#!/usr/bin/env bash
# Integration tests of drift monitoring in `vigil serve` (docs/monitoring.md, "Model quality:
# drift"): the real server on a free port with a temporary model repository, over HTTP with curl
# and jq; expected PSIs computed independently from the rows sent and the reference in
# config.json (/usr/bin/python3).
#
# Usage: test_drift.sh VIGIL SLOW_CLIENTS HAMMER PROMTOOL WORK_DIR SOURCE_DIR
#   (the arguments every server suite gets, tests/cmake/server.cmake; the load tools are unused)
set -u

VIGIL=$1
PROMTOOL=$4
WORK=$5
SRC=$6
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

fresh_work_dir "$WORK"

make_test_repo repo "$SRC" || exit 1
# calm and shifted: copies of iris, for traffic like the training data and shifted traffic;
# copies served without drift series: noref (config.json has no reference), shortref (a feature
# with 10 bin edges), unsorted (decreasing edges); noclass (a class missing from the class
# distribution) gets feature drift only. Every one of them serves.
declare -A EDIT=(
    [calm]='.'
    [shifted]='.'
    [noref]='del(.reference)'
    [shortref]='.reference.features.petal_width.bin_edges |= .[1:]'
    [unsorted]='.reference.features.sepal_width.bin_edges |= reverse'
    [noclass]='del(.reference.class_distribution.virginica)'
)
for name in "${!EDIT[@]}"; do
    mkdir -p "repo/$name/1"
    cp repo/iris/1/model.onnx "repo/$name/1/"
    jq --arg n "$name" ".name = \$n | ${EDIT[$name]}" repo/iris/1/config.json \
        >"repo/$name/1/config.json"
done
jq '.reference' repo/iris/1/config.json >reference.json
FEATURES="sepal_length sepal_width petal_length petal_width"

# drift_series FILE: the drift samples of a scrape (one per line), for "absent" checks
drift_series() {
    grep -E '^vigil_(feature_psi|feature_values|feature_missing|feature_out_of_range|prediction_psi|drift_window_rows)' "$1"
}

# close_to NAME GOT WANT: |GOT - WANT| <= 1e-9 * max(1, |WANT|)
close_to() {
    if awk -v g="$2" -v w="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; m = w < 0 ? -w : w;
            if (m < 1) m = 1; exit !(d <= 1e-9 * m) }'; then ok; else
        bad "$1: got $2, expected $3"
    fi
}

# log_has PATTERN NAME: the current server's log matches PATTERN (grep -E)
log_has() {
    if grep -Eq -- "$1" "$SERVER_LOG"; then ok; else
        bad "$2: the log lacks /$1/: $(head -c 600 "$SERVER_LOG")"
    fi
}

# compare NAME GOT OP LIMIT: awk numeric comparison (NaN and "absent" fail)
compare() {
    if awk -v g="$2" -v l="$4" -v op="$3" 'BEGIN { if (g !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) exit 1;
            if (op == "<") exit !(g + 0 < l + 0); exit !(g + 0 > l + 0) }'; then ok; else
        bad "$1: got $2, expected $3 $4"
    fi
}

# ---- configuration (no server runs) ---------------------------------------------------------
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout 20"
expect_status 0 "serve --help" -- "$VIGIL" serve --help
for opt in drift drift-window; do
    env_name=VIGIL_$(echo "$opt" | tr 'a-z-' 'A-Z_')
    if grep -q -- "--$opt " out.txt && grep -q -- "$env_name" out.txt; then ok; else
        bad "serve --help lacks --$opt or $env_name"
    fi
done
printf '{"drift": 1}' >cfg_drift_number.json
printf '{"drift-window": 0}' >cfg_window_zero.json
while IFS='|' read -r name envs args pattern; do
    # shellcheck disable=SC2086  # envs and args are word lists
    expect_status 2 "$name" -- env $envs "$VIGIL" serve --models repo --host 127.0.0.1 $args &&
        expect_err "$pattern" "$name"
done <<'EOF'
drift not a switch|-|--port 0 --drift maybe|--drift: 'maybe' is not on or off
drift empty|-|--port 0 --drift=|--drift: '' is not on or off
window zero|-|--port 0 --drift-window 0|--drift-window: '0' is not a whole number in \[1, 86400\]
window too long|-|--port 0 --drift-window 86401|--drift-window: '86401' is not a whole number
window fraction|-|--port 0 --drift-window 1.5|--drift-window: '1.5' is not a whole number
env drift not a switch|VIGIL_DRIFT=yes|--port 0|VIGIL_DRIFT: 'yes' is not on or off
env window not a number|VIGIL_DRIFT_WINDOW=ten|--port 0|VIGIL_DRIFT_WINDOW: 'ten' is not a whole
config drift number|-|--port 0 --config cfg_drift_number.json|key "drift": expected true, false
config window zero|-|--port 0 --config cfg_window_zero.json|key "drift-window": 0 is not a whole
EOF
# shellcheck disable=SC2034
VG_TEST_TIMEOUT=""

# ---- one server, every model ------------------------------------------------------------------
server_start main --host 127.0.0.1 --port 0 --models repo --threads 2 || exit 1

# The log: which models are monitored and which are not, and why.
log_has 'model iris version 1: drift monitored over 600 s \(4 features, predicted classes\)' \
    "drift line of iris"
log_has 'model noref version 1: no drift monitoring: config.json has no "reference"' \
    "why noref has no drift"
log_has "model shortref version 1: no drift monitoring: the reference of feature 'petal_width' needs 11 numbers in bin_edges" \
    "why shortref has no drift"
log_has "model unsorted version 1: no drift monitoring: reference of feature 'sepal_width': bin_edges must be finite and non-decreasing" \
    "why unsorted has no drift"
log_has "model noclass version 1: drift monitored over 600 s \\(4 features\\); no prediction drift: reference.class_distribution has no share for class 'virginica'" \
    "why noclass has no prediction drift"

scrape start.prom
expect_eq "rows before any traffic" "$(metric start.prom vigil_drift_window_rows model=\"iris\")" 0
expect_eq "PSI before any traffic" \
    "$(grep -c '^vigil_feature_psi{model="iris",version="1",feature="[a-z_]*"} NaN$' start.prom)" 4
expect_eq "prediction PSI before any traffic" \
    "$(grep -c '^vigil_prediction_psi{model="iris",version="1"} NaN$' start.prom)" 1
for m in noref shortref unsorted broken badconfig; do
    expect_eq "no drift series for $m" "$(drift_series start.prom | grep -c "model=\"$m\"")" 0
done
for m in noref shortref unsorted noclass; do
    post_json "/models/$m/predict" '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'
    expect_code 200 "$m serves"
done
scrape noclass.prom
expect_eq "noclass: feature drift" "$(drift_series noclass.prom |
    grep -c '^vigil_feature_psi{model="noclass",version="1",feature="[a-z_]*"} [0-9.e+-]*$')" 4
expect_eq "noclass: no prediction drift series" \
    "$(metric noclass.prom vigil_prediction_psi model=\"noclass\")" absent
expect_eq "noclass: window rows" "$(metric noclass.prom vigil_drift_window_rows model=\"noclass\")" 1

# -- exact counts on iris: single rows, a batch, a V2 batch; refused requests are not counted ---
# Training range: sepal_length [4.3, 7.9], sepal_width [2.2, 4.4], petal_length [1.1, 6.9],
# petal_width [0.1, 2.5].
: >sent.rows
: >predicted.classes
row() {
    printf '{"sepal_length":%s,"sepal_width":%s,"petal_length":%s,"petal_width":%s}' "$@"
}
for _ in 1 2 3 4 5; do
    post_json /models/iris/predict "$(row 5.1 3.5 1.4 0.2)"
    expect_code 200 "single row"
    echo "5.1 3.5 1.4 0.2" >>sent.rows
    jq -r '.prediction' resp.body >>predicted.classes
done
post_json /models/iris/predict "{\"instances\":[$(row 4.0 3.0 1.4 0.2),$(row 8.5 3.0 7.5 0.2),$(row 5.0 2.0 1.0 3.0)]}"
expect_code 200 "batch of 3"
printf '4.0 3.0 1.4 0.2\n8.5 3.0 7.5 0.2\n5.0 2.0 1.0 3.0\n' >>sent.rows
jq -r '.predictions[].prediction' resp.body >>predicted.classes
post_json /v2/models/iris/infer \
    '{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[[7.9,4.4,6.9,2.5],[4.3,2.2,1.1,0.1]]}]}'
expect_code 200 "V2 batch of 2"
printf '7.9 4.4 6.9 2.5\n4.3 2.2 1.1 0.1\n' >>sent.rows
jq -r '.outputs[] | select(.name == "label") | .data[]' resp.body >>predicted.classes
# refused: a missing feature, malformed JSON, a wrong V2 shape
post_json /models/iris/predict '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4}'
expect_code 400 "missing feature"
post_json /models/iris/predict '{"sepal_length":'
expect_code 400 "malformed JSON"
post_json /v2/models/iris/infer '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
expect_code 400 "V2 wrong shape"

scrape exact.prom
expect_eq "window rows" "$(metric exact.prom vigil_drift_window_rows model=\"iris\")" 10
for f in $FEATURES; do
    expect_eq "values of $f" \
        "$(metric exact.prom vigil_feature_values_total model=\"iris\" feature=\""$f"\")" 10
    expect_eq "missing of $f" \
        "$(metric exact.prom vigil_feature_missing_total model=\"iris\" feature=\""$f"\")" 0
done
while read -r f below above; do
    expect_eq "$f below range" "$(metric exact.prom vigil_feature_out_of_range_total \
        model=\"iris\" feature=\""$f"\" side=\"below\")" "$below"
    expect_eq "$f above range" "$(metric exact.prom vigil_feature_out_of_range_total \
        model=\"iris\" feature=\""$f"\" side=\"above\")" "$above"
done <<'EOF'
sepal_length 1 1
sepal_width 1 0
petal_length 1 1
petal_width 0 1
EOF

# The PSIs, computed here from the rows sent, the predicted classes and config.json's reference:
# the same bins and smoothing as the server (pseudo-count 0.5, reference shares floored at 1e-4
# and renormalized), written independently.
cat >psi.py <<'EOF'
import json, math, struct, sys

ref = json.load(open(sys.argv[1]))
classes = json.load(open(sys.argv[2]))["classes"]
rows = [list(map(float, line.split())) for line in open(sys.argv[3]) if line.strip()]
predicted = [line.strip() for line in open(sys.argv[4]) if line.strip()]
shift = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0

def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]

def psi(counts, shares):
    n, total = len(counts), sum(counts)
    if total == 0:
        return float("nan")
    floored = [max(s, 1e-4) for s in shares]
    norm = sum(floored)
    out = 0.0
    for c, s in zip(counts, floored):
        a, e = (c + 0.5) / (total + 0.5 * n), s / norm
        out += (a - e) * math.log(a / e)
    return out

for j, (name, fr) in enumerate(ref["features"].items()):
    edges = fr["bin_edges"]
    counts = [0] * 12
    for r in rows:
        v = f32(r[j] + shift * fr["std"])
        if v < edges[0]:
            b = -1
        elif v > edges[10]:
            b = 10
        else:
            b = max(i for i in range(10) if edges[i] <= v)
        counts[b + 1] += 1
    print(name, repr(psi(counts, [fr["below"]] + fr["bin_shares"] + [fr["above"]])))
dist = ref["class_distribution"]
print("prediction", repr(psi([predicted.count(c) for c in classes], [dist[c] for c in classes])))
EOF
"$PY" psi.py reference.json repo/iris/1/config.json sent.rows predicted.classes >want.psi ||
    bad "psi.py failed"
while read -r what want; do
    if [ "$what" = prediction ]; then
        got=$(metric exact.prom vigil_prediction_psi model=\"iris\")
    else
        got=$(metric exact.prom vigil_feature_psi model=\"iris\" feature=\""$what"\")
    fi
    close_to "PSI of $what over the 10 rows" "$got" "$want"
done <want.psi

# -- PSI of training-like traffic and of shifted traffic ---------------------------------------
# data/iris.csv 20 times (3,000 rows, in 3 requests of 1,000) to calm; the same rows with every
# feature shifted by 3 reference standard deviations to shifted.
# body FILE SHIFT: {"instances": [...]} of the CSV rows, each feature + SHIFT * its std
body() {
    jq -R -s --slurpfile ref reference.json --argjson shift "$2" '
        split("\n") | map(select(length > 0)) | (.[0] | split(",")) as $head
        | .[1:] | map(split(",") as $v
            | reduce range(0; 4) as $j ({};
                .[$head[$j]] = ($v[$j] | tonumber)
                    + $shift * $ref[0].features[$head[$j]].std))
        | {instances: .}' "$1"
}
body "$SRC/data/iris.csv" 0 >calm150.json
body "$SRC/data/iris.csv" 3 >shifted150.json
jq '.instances as $r | {instances: [range(0; 1000) as $i | $r[$i % ($r | length)]]}' \
    calm150.json >calm1000.json
jq '.instances as $r | {instances: [range(0; 1000) as $i | $r[$i % ($r | length)]]}' \
    shifted150.json >shifted1000.json
for _ in 1 2 3; do
    post_json /models/calm/predict "@calm1000.json"
    expect_code 200 "calm batch"
    post_json /models/shifted/predict "@shifted1000.json"
    expect_code 200 "shifted batch"
done
scrape psi.prom
for m in calm shifted; do
    expect_eq "$m window rows" "$(metric psi.prom vigil_drift_window_rows model=\""$m"\")" 3000
done
for f in $FEATURES; do
    compare "calm PSI of $f" "$(metric psi.prom vigil_feature_psi model=\"calm\" feature=\""$f"\")" \
        "<" 0.1
    compare "shifted PSI of $f" \
        "$(metric psi.prom vigil_feature_psi model=\"shifted\" feature=\""$f"\")" ">" 0.25
    expect_eq "shifted $f above range for a third of the rows at least" "$(metric psi.prom \
        vigil_feature_out_of_range_total model=\"shifted\" feature=\""$f"\" side=\"above\" |
        awk '{ print ($1 > 1000) }')" 1
done
compare "calm prediction PSI" "$(metric psi.prom vigil_prediction_psi model=\"calm\")" "<" 0.1
compare "shifted prediction PSI" "$(metric psi.prom vigil_prediction_psi model=\"shifted\")" \
    ">" 0.25
grep -E '^vigil_(feature_psi|prediction_psi)\{model="(calm|shifted)"' psi.prom |
    sed 's/^/    /' # the figures, for the log

command -v "$PROMTOOL" >/dev/null 2>&1 || bad "promtool '$PROMTOOL' not found (scripts/install-deps.sh)"
if complaints=$("$PROMTOOL" check metrics <psi.prom 2>&1) && [ -z "$complaints" ]; then ok; else
    bad "promtool check metrics on a scrape with drift series: $complaints"
fi
server_stop
expect_eq "exit status after SIGTERM" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "main server"

# ---- --drift off, from each layer ------------------------------------------------------------
if server_start off --host 127.0.0.1 --port 0 --models repo --drift off; then
    post_json /models/iris/predict "$(row 5.1 3.5 1.4 0.2)"
    expect_code 200 "predict with drift off"
    scrape off.prom
    expect_eq "no drift series with --drift off" "$(drift_series off.prom | wc -l)" 0
    expect_eq "no drift families with --drift off" \
        "$(grep -cE '^# TYPE vigil_(feature_|prediction_psi|drift_)' off.prom)" 0
    expect_eq "predictions still counted" \
        "$(metric off.prom vigil_model_rows_total model=\"iris\")" 1
    log_has 'drift monitoring is off' "--drift off"
    server_stop
    check_sanitizers "$SERVER_LOG" "drift off server"
fi
if VIGIL_DRIFT=off server_start off_env --host 127.0.0.1 --port 0 --models repo; then
    log_has 'drift monitoring is off' "VIGIL_DRIFT=off"
    server_stop
fi
printf '{"drift": false}' >cfg_off.json
printf '{"drift": "on", "drift-window": 30}' >cfg_window.json
if server_start off_file --host 127.0.0.1 --port 0 --models repo --config cfg_off.json; then
    log_has 'drift monitoring is off' "config drift false"
    server_stop
fi
if VIGIL_DRIFT=off server_start argv_wins --host 127.0.0.1 --port 0 --models repo \
    --config cfg_window.json --drift on; then
    log_has 'model iris version 1: drift monitored over 30 s' \
        "--drift on over VIGIL_DRIFT=off, window 30 from the file"
    server_stop
fi

# ---- a 2-second window empties without traffic -----------------------------------------------
if server_start window --host 127.0.0.1 --port 0 --models repo --drift-window 2; then
    t0=$(date +%s.%N)
    post_json /models/iris/predict "{\"instances\":[$(row 5.1 3.5 1.4 0.2),$(row 6.7 3.0 5.2 2.3)]}"
    expect_code 200 "predict into a 2 s window"
    scrape w0.prom
    t_scraped=$(date +%s.%N)
    # Only when the machine was quick enough for the rows to still be in the window.
    if awk -v a="$t0" -v b="$t_scraped" 'BEGIN { exit !(b - a < 1.5) }'; then
        expect_eq "2 s window right after the rows" \
            "$(metric w0.prom vigil_drift_window_rows model=\"iris\")" 2
        compare "PSI right after the rows" \
            "$(metric w0.prom vigil_feature_psi model=\"iris\" feature=\"sepal_length\")" ">" 0
    else
        echo "note: scrape came $(awk -v a="$t0" -v b="$t_scraped" 'BEGIN { print b - a }') s" \
            "after the rows; not checking that they were in the window" >&2
    fi
    # Still there until 2 s after they were counted (which was after t0): a scrape that ends
    # before t0 + 1.9 s must see them (when the machine is quick enough to do it in time).
    sleep 1.2
    scrape w1.prom
    t_scraped=$(date +%s.%N)
    if awk -v a="$t0" -v b="$t_scraped" 'BEGIN { exit !(b - a < 1.9) }'; then
        expect_eq "2 s window 1.2 s after the rows" \
            "$(metric w1.prom vigil_drift_window_rows model=\"iris\")" 2
    fi
    # Empty after ~3 s with no traffic (a value counts for 2 to 2 + 1/30 s); at the latest 10 s.
    sleep 2
    emptied=""
    for _ in $(seq 20); do
        scrape w2.prom
        if [ "$(metric w2.prom vigil_drift_window_rows model=\"iris\")" = 0 ]; then
            emptied=1
            break
        fi
        sleep 0.35
    done
    if [ -n "$emptied" ]; then
        ok
        expect_eq "PSIs NaN in an empty window" \
            "$(grep -cE '^vigil_(feature_psi|prediction_psi)\{model="iris",.*\} NaN$' w2.prom)" 5
        expect_eq "cumulative counters stay" \
            "$(metric w2.prom vigil_feature_values_total model=\"iris\" feature=\"petal_width\")" 2
    else
        bad "the 2 s window still holds rows 10 s after the last request"
    fi
    server_stop
    check_sanitizers "$SERVER_LOG" "window server"
fi

finish drift
