#!/usr/bin/env bash
# Integration tests of `vigil load` (docs/load-generator.md): every scenario against the real
# `vigil serve` with a temporary model repository, the counts against the server's own metrics,
# the drawn bodies against the training reference, the rows of --data (cycled in order, drift
# shifted), ground-truth feedback (--feedback, --label-noise) against the server's feedback
# counters and live accuracy, failures and exit statuses, and the coordinated-omission test
# against tests/tools/http_stall_server.
#
# Usage: test_load.sh VIGIL STALL_SERVER WORK_DIR SOURCE_DIR [SANITIZED]
#   STALL_SERVER  tests/tools/http_stall_server
#   SOURCE_DIR    the source tree (models/iris, data/iris.csv)
#   SANITIZED     ON for an ASan/UBSan build: lower rates, same checks
# Timing-sensitive checks compare counts and ratios with wide margins, never absolute speed.
set -u

VIGIL=$1
STALL=$2
WORK=$3
SRC=$4
SANITIZED=${5:-OFF}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=../server/common.sh
. "$HERE/../server/common.sh"

fresh_work_dir "$WORK"

case $SANITIZED in
ON | on | 1 | TRUE | true) RATE=400 CO_RATE=500 ;;
*) RATE=2000 CO_RATE=1000 ;;
esac
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout 120"

# check NAME JQ_FILTER FILE [JQ ARGS...]: the filter holds on the JSON in FILE
check() {
    local name=$1 filter=$2 file=$3
    shift 3
    if jq -e "$@" "$filter" "$file" >/dev/null 2>&1; then ok; else
        bad "$name: $file fails jq '$filter': $(jq -c '{scheduled,sent,unsent,ok,expected_errors,unexpected_status,bad_body,connection_errors,timeouts,statuses,feedback:(.feedback|del(.requests)?)}' "$file" 2>/dev/null || head -c 300 "$file")"
    fi
}
# load NAME WANT_EXIT ARGS...: `vigil load ARGS` with its JSON in NAME.json, stderr in NAME.err
load() {
    local name=$1 want=$2
    shift 2
    expect_status "$want" "$name" -- "$VIGIL" load "$@"
    cp out.txt "$name.json"
    cp err.txt "$name.err"
}
# The answers add up: every request sent ends as one outcome; answered ones are in the histogram.
check_counts() {
    check "$1: outcomes add up to sent" \
        '.ok + .expected_errors + .unexpected_status + .bad_body + .connection_errors + .timeouts == .sent' "$1.json"
    check "$1: sent + unsent == scheduled" '.sent + .unsent == .scheduled' "$1.json"
    check "$1: kinds add up" '([.kinds[].sent] | add) == .sent and ([.kinds[].ok] | add) == .ok' "$1.json"
    check "$1: statuses add up to answered" '([.statuses[]] | add // 0) == .answered' "$1.json"
    check "$1: histogram ends at answered" '.latency_histogram_ms[-1].count == .answered' "$1.json"
    check "$1: percentiles ordered" \
        '.latency_ms | .min <= .p50 and .p50 <= .p90 and .p90 <= .p99 and .p99 <= .p999 and .p999 <= .max' "$1.json"
}

make_test_repo repo "$SRC" || exit 1
# noref: iris without the training reference in config.json
mkdir -p repo/noref/1
cp repo/iris/1/model.onnx repo/noref/1/model.onnx
jq 'del(.reference) | .name = "noref"' repo/iris/1/config.json >repo/noref/1/config.json
cp repo/noref/1/config.json repo/noref/config.json

# ---- help and usage errors (no server needed) ----------------------------------------------------
expect_status 0 "load --help" -- "$VIGIL" load --help
for opt in url model scenario rate duration warmup connections threads timeout error-ratio \
    drift-shift drift-features drift-start spike-factor spike-start spike-length seed path body \
    method content-type expect-status max-error-rate max-p99 report progress no-progress dump json \
    data target feedback label-noise; do
    if grep -q -- "--$opt\\b" out.txt; then ok; else bad "load --help lacks --$opt"; fi
done
for word in normal spike drift errors mixed "Exit status" "Raw mode" "Checks" "Output"; do
    if grep -q "$word" out.txt; then ok; else bad "load --help lacks '$word'"; fi
done
expect_status 0 "vigil --help lists load" -- "$VIGIL" --help
if grep -q '^  load ' out.txt; then ok; else bad "vigil --help does not list load"; fi

U=http://127.0.0.1:9
while IFS='|' read -r name args; do
    [ -z "$name" ] && continue
    read -r -a argv <<<"$args"
    expect_status 2 "usage: $name" -- "$VIGIL" load "${argv[@]}" &&
        expect_err "^vigil load: " "usage: $name message"
done <<EOF
no url|--model iris --rate 10
no rate|--url $U --model iris
bad scenario|--url $U --model iris --rate 10 --scenario chaos
bad duration|--url $U --model iris --rate 10 --duration 10x
zero duration|--url $U --model iris --rate 10 --duration 0
negative rate|--url $U --model iris --rate -5
rate not a number|--url $U --model iris --rate fast
error ratio above 1|--url $U --model iris --rate 10 --scenario errors --error-ratio 1.5
error ratio on normal|--url $U --model iris --rate 10 --error-ratio 0.1
spike past the end|--url $U --model iris --rate 10 --scenario spike --duration 3s --spike-start 2s --spike-length 2s
spike option on drift|--url $U --model iris --rate 10 --scenario drift --spike-factor 2
drift without a model|--url $U --rate 10 --scenario drift
body with a model|--url $U --model iris --rate 10 --body x.json
unknown option|--url $U --model iris --rate 10 --frobnicate
stray argument|--url $U --model iris --rate 10 extra
threads above connections|--url $U --model iris --rate 10 --threads 4 --connections 2
zero connections|--url $U --model iris --rate 10 --connections 0
missing value|--url $U --model iris --rate
https URL|--url https://127.0.0.1:9 --model iris --rate 10
URL without scheme|--url 127.0.0.1:9 --model iris --rate 10
feedback without data|--url $U --model iris --rate 10 --feedback 0.5
feedback without target|--url $U --model iris --rate 10 --feedback 0.5 --data $SRC/data/iris.csv
target without data|--url $U --model iris --rate 10 --target species
label noise without feedback|--url $U --model iris --rate 10 --data $SRC/data/iris.csv --target species --label-noise 0.1
feedback above 1|--url $U --model iris --rate 10 --data $SRC/data/iris.csv --target species --feedback 1.5
negative label noise|--url $U --model iris --rate 10 --data $SRC/data/iris.csv --target species --feedback 0.5 --label-noise -0.1
data in raw mode|--url $U --rate 10 --data $SRC/data/iris.csv
empty data name|--url $U --model iris --rate 10 --data=
EOF

# ---- unreachable server --------------------------------------------------------------------------
port=$(free_port)
expect_status 1 "unreachable URL" -- "$VIGIL" load --url "http://127.0.0.1:$port" --model iris \
    --rate 10 --duration 1s
expect_err "cannot connect to http://127.0.0.1:$port" "unreachable URL message"
expect_status 1 "unreachable URL, raw mode" -- "$VIGIL" load --url "http://127.0.0.1:$port" \
    --rate 10 --duration 1s
expect_err "cannot connect" "unreachable URL, raw mode message"

# ---- against vigil serve -------------------------------------------------------------------------
server_start srv --host 127.0.0.1 --port 0 --models repo || {
    finish load
    exit 1
}
URL=$SERVER_URL
req GET /models/iris
cp resp.body iris.json
if jq -e '.reference.features.sepal_length.bin_edges | length == 11' iris.json >/dev/null; then ok; else
    bad "GET /models/iris lacks the reference"
fi

expect_status 1 "unknown model" -- "$VIGIL" load --url "$URL" --model nosuch --rate 10 --duration 1s
expect_err "model 'nosuch' not found" "unknown model message"
expect_status 1 "model without reference" -- "$VIGIL" load --url "$URL" --model noref --rate 10 \
    --duration 1s
expect_err "model 'noref' has no training reference" "model without reference message"
expect_status 2 "unknown drift feature" -- "$VIGIL" load --url "$URL" --model iris --rate 10 \
    --scenario drift --drift-features petal_width,colour
expect_err "'colour' is not a feature of model 'iris'" "unknown drift feature message"

# normal: the exact schedule (counts, not timings), every answer right
load normal 0 --url "$URL" --model iris --rate "$RATE" --duration 2s --json
check_counts normal
check "normal: scheduled == rate x duration" ".scheduled == $((RATE * 2))" normal.json
check "normal: sent == scheduled, none unsent" '.sent == .scheduled and .unsent == 0' normal.json
check "normal: every answer right" '.ok == .sent and .failed == 0 and .statuses["200"] == .sent' normal.json
check "normal: one kind" '.kinds | keys == ["normal"]' normal.json
# (sends late at the end on a busy machine lower the rate: the exact counts above are the check)
check "normal: sent rate within 10 % of the rate" \
    "(.sent_rate - $RATE) | fabs < $RATE * 0.1" normal.json
check "normal: connections opened" '.connects >= 64 and .connect_errors == 0' normal.json
check "normal: exit status in the JSON" '.exit_status == 0 and .interrupted == false' normal.json
if grep -q $'\r' normal.err; then bad "progress line written to a non-terminal"; else ok; fi

# the table (no --json) has the rows and lines the doc shows
load table 0 --url "$URL" --model iris --rate "$RATE" --duration 1s
for word in '^kind +sent +rate/s' '^normal +[0-9]+' '^total +[0-9]+' '^requests +scheduled' \
    '^outcomes +ok' '^statuses +200: ' '^schedule ' '^cpu '; do
    if grep -Eq "$word" table.json; then ok; else bad "table lacks /$word/"; fi
done

# two threads: the same exact schedule
load threads 0 --url "$URL" --model iris --rate "$RATE" --duration 1s --threads 2 --connections 16 --json
check_counts threads
check "threads: sent == scheduled == rate" ".sent == .scheduled and .scheduled == $RATE and .failed == 0" threads.json

# errors: the configured share of invalid requests, each refused as expected, and the server's
# own counts by status equal the generator's
scrape before.txt
load errors 0 --url "$URL" --model iris --rate "$RATE" --duration 2s --scenario errors \
    --error-ratio 0.25 --json
check_counts errors
check "errors: no failure" '.failed == 0 and .sent == .scheduled' errors.json
check "errors: share of expected errors is 0.25" \
    '(.expected_errors / .sent - 0.25) | fabs < 0.01' errors.json
check "errors: every error kind, refused with its status" \
    '[.kinds | to_entries[] | select(.key != "normal") | .value | .sent > 0 and .expected_errors == .sent] | length == 6 and all' errors.json
check "errors: statuses" '(.statuses | keys) == ["200","400","404","405"]' errors.json
route='route="/models/{model}/predict"'
for code in 200 400 404 405; do
    want=$(jq ".statuses[\"$code\"]" errors.json)
    got=""
    for _ in $(seq 30); do # the server counts a request once its last byte is sent
        scrape after.txt
        got=$(awk -v a="$(metric before.txt vigil_http_requests_total "$route" "code=\"$code\"")" \
            -v b="$(metric after.txt vigil_http_requests_total "$route" "code=\"$code\"")" \
            'BEGIN { if (a == "absent") a = 0; if (b == "absent") b = 0; printf "%d", b - a }')
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    expect_eq "errors: server's count of $code on the predict route" "$got" "$want"
done

# errors with --unavailable-model: requests to the model that failed to load ("broken") are a
# seventh invalid kind, answered 503 and counted so by the server
scrape before.txt
load unavail 0 --url "$URL" --model iris --rate "$RATE" --duration 1s --scenario errors \
    --error-ratio 0.35 --unavailable-model broken --json
check_counts unavail
check "unavailable: every one of 7 error kinds refused with its status" \
    '[.kinds | to_entries[] | select(.key != "normal") | .value | .sent > 0 and .expected_errors == .sent] | length == 7 and all' unavail.json
check "unavailable: 503s" '.kinds.unavailable_model.sent == .statuses["503"] and .statuses["503"] > 0' unavail.json
want=$(jq '.statuses["503"]' unavail.json)
for _ in $(seq 30); do
    scrape after.txt
    got=$(awk -v a="$(metric before.txt vigil_http_requests_total "$route" 'code="503"')" \
        -v b="$(metric after.txt vigil_http_requests_total "$route" 'code="503"')" \
        'BEGIN { if (a == "absent") a = 0; if (b == "absent") b = 0; printf "%d", b - a }')
    [ "$got" = "$want" ] && break
    sleep 0.1
done
expect_eq "unavailable: server's count of 503 on the predict route" "$got" "$want"
expect_status 1 "--unavailable-model of a loaded model" -- "$VIGIL" load --url "$URL" --model iris \
    --rate 10 --duration 1s --scenario errors --unavailable-model iris
expect_err "must be a model the server failed to load .*answered 200" "--unavailable-model iris"
expect_status 1 "--unavailable-model of an unknown model" -- "$VIGIL" load --url "$URL" \
    --model iris --rate 10 --duration 1s --scenario errors --unavailable-model nosuch
expect_err "answered 404" "--unavailable-model nosuch"
expect_status 2 "--unavailable-model without errors" -- "$VIGIL" load --url "$URL" --model iris \
    --rate 10 --duration 1s --unavailable-model broken
expect_err "apply to the errors and mixed scenarios" "--unavailable-model with normal"

# drift: the drawn bodies, checked against the reference
"$VIGIL" load --url "$URL" --model iris --rate 1000 --dump 4000 >normal.dump 2>dump.err
"$VIGIL" load --url "$URL" --model iris --rate 1000 --scenario drift --drift-shift 3 \
    --dump 4000 >drift.dump 2>>dump.err
"$VIGIL" load --url "$URL" --model iris --rate 1000 --scenario drift --drift-shift -2 \
    --drift-features petal_width --dump 4000 >drift1.dump 2>>dump.err
for f in normal drift drift1; do
    if [ "$(wc -l <$f.dump)" = 4000 ] && jq -e '.body | fromjson | type == "object"' $f.dump >/dev/null; then
        ok
    else
        bad "--dump 4000 ($f) did not print 4000 JSON bodies: $(head -c 300 dump.err)"
    fi
done
# feature_means FILE: {feature: mean} over the dumped bodies
feature_means() {
    jq -s '[.[].body | fromjson] as $rows | ($rows[0] | keys) | map({(.): ([$rows[][.]] | add / length)}) | add' "$1"
}
feature_means normal.dump >normal.means
feature_means drift.dump >drift.means
feature_means drift1.dump >drift1.means
# moved FILE FEATURE SHIFT: the mean moved by SHIFT reference standard deviations (± 0.25)
moved() {
    jq -e --slurpfile m "$1" --arg f "$2" --argjson shift "$3" \
        '.reference.features[$f] as $r | (($m[0][$f] - $r.mean) / $r.std - $shift) | fabs < 0.25' \
        iris.json >/dev/null
}
for feat in sepal_length sepal_width petal_length petal_width; do
    if moved normal.means "$feat" 0; then ok; else bad "normal: mean of $feat is off the reference"; fi
done
for feat in sepal_length sepal_width; do
    if moved drift.means "$feat" 3; then ok; else bad "drift: $feat not shifted by 3 std"; fi
done
for feat in petal_length petal_width; do
    if moved drift.means "$feat" 0; then ok; else bad "drift: $feat moved though not a drift feature"; fi
done
for feat in sepal_length sepal_width petal_length; do
    if moved drift1.means "$feat" 0; then ok; else bad "drift1: $feat moved"; fi
done
if moved drift1.means petal_width -2; then ok; else bad "drift1: petal_width not shifted by -2 std"; fi
if jq -e -s --slurpfile ref iris.json '
    $ref[0].reference.features as $r
    | all(.[].body | fromjson | to_entries[];
          .value >= $r[.key].min * (1 - 1e-6) and .value <= $r[.key].max * (1 + 1e-6))' \
    normal.dump >/dev/null; then ok; else
    bad "normal: a drawn value lies outside the reference min/max"
fi
if jq -e -s 'all(.[]; .kind == "drift" and .method == "POST" and .path == "/models/iris/predict")' \
    drift.dump >/dev/null; then ok; else bad "drift dump: kinds, method or path"; fi
load drift 0 --url "$URL" --model iris --rate "$RATE" --duration 1s --scenario drift --json
check_counts drift
check "drift: every answer right, drift kind only" \
    '.ok == .sent and .sent == .scheduled and (.kinds | keys) == ["drift"] and .drift.features == ["sepal_length","sepal_width"]' drift.json

# spike: the rate times the factor during the window, exactly in counts
load spike 0 --url "$URL" --model iris --rate "$RATE" --duration 3s --scenario spike \
    --spike-factor 3 --spike-start 1s --spike-length 1s --json
check_counts spike
check "spike: scheduled == R + 3R + R" ".scheduled == $((RATE * 5)) and .sent == .scheduled" spike.json
check "spike: window counts 3R" ".spike_window.sent == $((RATE * 3)) and .failed == 0" spike.json

# mixed: everything at once, no wrong answer
load mixed 0 --url "$URL" --model iris --rate "$RATE" --duration 3s --scenario mixed --json
check_counts mixed
check "mixed: no failure" '.failed == 0 and .sent == .scheduled and .unsent == 0' mixed.json
check "mixed: normal, drift and every error kind" \
    '(.kinds | keys | length) == 8 and .kinds.drift.sent > 0 and .spike_window.sent > 0' mixed.json
check "mixed: 5 % errors by default" '(.expected_errors / .sent - 0.05) | fabs < 0.01' mixed.json

# raw mode, and the exit statuses
load raw 0 --url "$URL" --path /health --rate "$RATE" --duration 1s --json
check "raw: GET /health, all 200" '.scenario == "raw" and .ok == .sent and .sent == .scheduled' raw.json
printf '%s' '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}' >row.json
load rawpost 0 --url "$URL" --path /predict --body row.json --rate "$RATE" --duration 1s --json
check "raw POST: all 200" '.ok == .sent and .sent == .scheduled' rawpost.json
load wrongstatus 1 --url "$URL" --path /health --expect-status 201 --rate 200 --duration 1s --json
check "wrong status: counted" '.unexpected_status == .sent and .exit_status == 1' wrongstatus.json
expect_err "status 200, expected 201" "wrong status: described on stderr"
load tolerated 0 --url "$URL" --path /health --expect-status 201 --rate 200 --duration 1s \
    --max-error-rate 1 --json
load p99target 3 --url "$URL" --model iris --rate 200 --duration 1s --max-p99 1us --json
check "missed p99 target: exit status 3" '.exit_status == 3 and .failed == 0' p99target.json
expect_err "target missed" "missed p99 target message"
load progress 0 --url "$URL" --model iris --rate 200 --duration 1.5s --progress --json
if grep -q $'\r.*sent .*p99' progress.err; then ok; else bad "--progress wrote no progress line"; fi
load warmup 0 --url "$URL" --model iris --rate "$RATE" --duration 1s --warmup 500ms --json
check "warmup: apart from the figures" \
    ".scheduled == $RATE and .warmup.scheduled == $((RATE / 2)) and .warmup.stats.sent == $((RATE / 2)) and .warmup.stats.failed == 0" warmup.json

# ---- --data: the rows of a CSV file, in order -------------------------------------------------------
IRIS=$SRC/data/iris.csv
# iris.csv as JSON rows: [{feature: value, ...}, ...] and the species column
jq -R -s 'split("\n") | map(select(length > 0) | split(",")) | .[0] as $h
    | .[1:] | map([$h, .] | transpose | map({(.[0]): .[1]}) | add)' "$IRIS" >iris_rows.json
"$VIGIL" load --url "$URL" --model iris --rate 1000 --data "$IRIS" --dump 300 >data.dump 2>dump.err
if [ "$(wc -l <data.dump)" = 300 ]; then ok; else bad "--data --dump 300: $(head -c 300 dump.err)"; fi
# same_row NUMBER_A NUMBER_B: float32 values printed with 9 digits against the CSV's text
if jq -e -s --slurpfile rows iris_rows.json '
    all(.[]; (.body | fromjson) as $b | $rows[0][.seq % 150] as $r
        | .kind == "normal" and ($b | keys) == (["petal_length","petal_width","sepal_length","sepal_width"])
        and all($b | to_entries[]; (.value - ($r[.key] | tonumber)) | fabs < 1e-6))' \
    data.dump >/dev/null; then ok; else bad "--data: request i does not send CSV row i mod 150"; fi
if jq -e -s '.[0].body == .[150].body and .[149].body == .[299].body and .[0].body != .[1].body' \
    data.dump >/dev/null; then ok; else bad "--data: rows not cycled every 150 requests"; fi
# drift with --data: the same rows, the drift features shifted by 3 reference std
"$VIGIL" load --url "$URL" --model iris --rate 1000 --data "$IRIS" --scenario drift --dump 150 \
    >datadrift.dump 2>>dump.err
if jq -e -s --slurpfile rows iris_rows.json --slurpfile ref iris.json '
    all(.[]; (.body | fromjson) as $b | $rows[0][.seq % 150] as $r
        | all($b | to_entries[];
              (if .key == "sepal_length" or .key == "sepal_width"
               then ($r[.key] | tonumber) + 3 * $ref[0].reference.features[.key].std
               else ($r[.key] | tonumber) end) as $want
              | (.value - $want) | fabs < 1e-5))' datadrift.dump >/dev/null; then ok; else
    bad "--data --scenario drift: rows not shifted by 3 std on the drift features only"
fi
# errors with --data: the valid requests still send row (request number mod 150)
"$VIGIL" load --url "$URL" --model iris --rate 1000 --data "$IRIS" --scenario errors --dump 400 \
    >dataerr.dump 2>>dump.err
if jq -e -s --slurpfile rows iris_rows.json '
    [.[] | select(.kind == "normal")] | length > 250 and
    all(.[]; (.body | fromjson) as $b | $rows[0][.seq % 150] as $r
        | all($b | to_entries[]; (.value - ($r[.key] | tonumber)) | fabs < 1e-6))' \
    dataerr.dump >/dev/null; then ok; else bad "--data --scenario errors: normal rows out of order"; fi
# a model without a reference runs with --data (drift then uses the data's own std)
load noref_data 0 --url "$URL" --model noref --rate "$RATE" --duration 1s --data "$IRIS" \
    --target species --json
check_counts noref_data
check "noref + --data: every answer right, the model's accuracy reported" \
    '.ok == .sent and .sent == .scheduled and .data.rows == 150 and .model_accuracy.predictions == .ok and .model_accuracy.accuracy > 0.9' \
    noref_data.json
"$VIGIL" load --url "$URL" --model noref --rate 1000 --data "$IRIS" --scenario drift \
    --drift-features petal_width --drift-shift 1 --dump 150 >norefdrift.dump 2>>dump.err
if jq -e -s --slurpfile rows iris_rows.json '
    ([$rows[0][] | .petal_width | tonumber]) as $v | ($v | add / length) as $m
    | (($v | map((. - $m) * (. - $m)) | add / length) | sqrt) as $std
    | all(.[]; ((.body | fromjson).petal_width - ($rows[0][.seq % 150].petal_width | tonumber) - $std) | fabs < 1e-5)' \
    norefdrift.dump >/dev/null; then ok; else
    bad "noref --data drift: petal_width not shifted by the data's std"
fi
# --data errors: a missing feature column, a label that is not a class, a one-class regressor noise
jq -r '(["sepal_length","sepal_width","petal_length","species"] | join(",")),
       (.[] | [.sepal_length, .sepal_width, .petal_length, .species] | join(","))' iris_rows.json \
    >no_petal_width.csv
sed 's/,setosa$/,rose/' "$IRIS" >rose.csv
expect_status 1 "--data without a feature column" -- "$VIGIL" load --url "$URL" --model iris \
    --rate 10 --duration 1s --data no_petal_width.csv
expect_err "no_petal_width.csv: line 1: no column 'petal_width'" "--data without a feature column: message"
expect_status 1 "--target with a class the model lacks" -- "$VIGIL" load --url "$URL" --model iris \
    --rate 10 --duration 1s --data rose.csv --target species --feedback 0.5
expect_err "column 'species' holds 'rose', which is not a class of model 'iris'" \
    "--target with a class the model lacks: message"

server_stop
expect_eq "server exit status" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log"

# ---- feedback: ground truth sent back, against the server's counters ---------------------------------
# A server of its own, whose live-accuracy window holds every feedback of this section, so its
# vigil_live_accuracy must equal the generator's expected live accuracy.
# fb_metric FILE OUTCOME: vigil_feedback_total{model="iris",outcome=OUTCOME} (0 when absent)
fb_metric() {
    local v
    v=$(metric "$1" vigil_feedback_total 'model="iris"' "outcome=\"$2\"")
    [ "$v" = absent ] && v=0
    printf '%.0f' "$v"
}
# delta NAME FILE_BEFORE FILE_AFTER METRIC LABELS...: after - before of a metric (absent = 0)
delta() {
    local before=$1 after=$2 name=$3
    shift 3
    awk -v a="$(metric "$before" "$name" "$@")" -v b="$(metric "$after" "$name" "$@")" \
        'BEGIN { if (a == "absent") a = 0; if (b == "absent") b = 0; printf "%d", b - a }'
}
# reg: a regressor for feedback without classes (outcome "received"), on generated rows
awk 'BEGIN { print "x1,x2,y"; for (i = 0; i < 300; i++) { a = (i * 37 % 101) / 10; b = (i * 53 % 89) / 10;
             printf "%.1f,%.1f,%.3f\n", a, b, 2 * a - b + (i % 7) / 100 } }' >reg.csv
"$VIGIL" train --data reg.csv --target y --name reg --repo repo --trees 10 >reg-train.log 2>&1 ||
    bad "train reg: $(tail -3 reg-train.log)"
if server_start fbsrv --host 127.0.0.1 --port 0 --models repo --live-accuracy-window 1000000; then
    URL=$SERVER_URL
    scrape fb0.txt
    if grep -q '^# TYPE vigil_feedback_total counter' fb0.txt; then ok; else
        bad "the server has no vigil_feedback_total: POST /feedback is missing from this build"
    fi
    load feedback 0 --url "$URL" --model iris --rate "$RATE" --duration 2s --data "$IRIS" \
        --target species --feedback 0.5 --label-noise 0.2 --json
    check_counts feedback
    check "feedback: predictions as usual, feedback apart" \
        ".sent == .scheduled and .scheduled == $((RATE * 2)) and .ok == .sent and (.kinds | keys) == [\"normal\"]" \
        feedback.json
    check "feedback: exactly floor(0.5 x right answers) chosen, all sent and accepted" \
        '.feedback | .selected == ($ok / 2 | floor) and .sent == .selected and .unsent == 0 and .accepted == .sent and .failed == 0 and .statuses["200"] == .sent' \
        feedback.json --argjson ok "$(jq .ok feedback.json)"
    check "feedback: correct + incorrect == accepted" \
        '.feedback | .correct + .incorrect == .accepted and .received == 0' feedback.json
    check "feedback: label noise share 0.2 (± 0.01)" \
        '.feedback | (.noisy / .sent - 0.2) | fabs < 0.01' feedback.json
    check "feedback: expected live accuracy == correct / (correct + incorrect)" \
        '.feedback | (.expected_live_accuracy - .correct / (.correct + .incorrect)) | fabs < 1e-12' \
        feedback.json
    check "feedback: the model's accuracy on the rows, and the noise lowers the live one" \
        '.model_accuracy.predictions == .ok and .model_accuracy.accuracy > 0.9 and .feedback.expected_live_accuracy < .model_accuracy.accuracy' \
        feedback.json
    check "feedback: latency of the feedback requests" \
        '.feedback.requests.answered == .feedback.sent and .feedback.requests.latency_ms.max >= .feedback.requests.latency_ms.p50' \
        feedback.json
    # the server's counts equal the generator's, exactly
    want_c=$(jq .feedback.correct feedback.json)
    want_i=$(jq .feedback.incorrect feedback.json)
    for _ in $(seq 30); do
        scrape fb1.txt
        [ "$(fb_metric fb1.txt correct)" = "$want_c" ] && [ "$(fb_metric fb1.txt incorrect)" = "$want_i" ] && break
        sleep 0.1
    done
    expect_eq "feedback: server's vigil_feedback_total{outcome=correct}" "$(fb_metric fb1.txt correct)" "$want_c"
    expect_eq "feedback: server's vigil_feedback_total{outcome=incorrect}" "$(fb_metric fb1.txt incorrect)" "$want_i"
    expect_eq "feedback: server's 200s on /feedback" \
        "$(delta fb0.txt fb1.txt vigil_http_requests_total 'route="/feedback"' 'code="200"')" \
        "$(jq .feedback.sent feedback.json)"
    expect_eq "feedback: server's 200s on the predict route" \
        "$(delta fb0.txt fb1.txt vigil_http_requests_total "$route" 'code="200"')" \
        "$(jq '.statuses["200"]' feedback.json)"
    expect_eq "feedback: nothing rejected" \
        "$(delta fb0.txt fb1.txt vigil_feedback_rejected_total)" 0
    # the live accuracy over every feedback so far (the window holds them all)
    live=$(metric fb1.txt vigil_live_accuracy 'model="iris"')
    if awk -v a="$live" -v b="$(jq .feedback.expected_live_accuracy feedback.json)" \
        'BEGIN { d = a - b; exit !(d < 1e-9 && d > -1e-9) }'; then ok; else
        bad "feedback: vigil_live_accuracy $live, the generator expected $(jq .feedback.expected_live_accuracy feedback.json)"
    fi
    expect_eq "feedback: vigil_live_accuracy_feedbacks" \
        "$(printf '%.0f' "$(metric fb1.txt vigil_live_accuracy_feedbacks 'model="iris"')")" \
        "$(jq .feedback.accepted feedback.json)"

    # mixed + drift + feedback on two threads: every answer right; request ids of a new run never
    # collide with the last run's (no 409), and the server's counts still equal the generator's
    load feedmix 0 --url "$URL" --model iris --rate "$RATE" --duration 2s --scenario mixed \
        --threads 2 --connections 16 --data "$IRIS" --target species --feedback 1 --json
    check_counts feedmix
    check "feedback mixed: no failure, drift and errors too" \
        '.failed == 0 and .sent == .scheduled and .kinds.drift.sent > 0 and .expected_errors > 0' feedmix.json
    check "feedback mixed: every right answer gets feedback, accepted" \
        '.feedback | .selected == .sent and .sent == .accepted and .unsent == 0 and .noisy == 0' \
        feedmix.json
    check "feedback mixed: one feedback per right prediction" '.feedback.sent == .ok' feedmix.json
    want_c=$((want_c + $(jq .feedback.correct feedmix.json)))
    want_i=$((want_i + $(jq .feedback.incorrect feedmix.json)))
    for _ in $(seq 30); do
        scrape fb2.txt
        [ "$(fb_metric fb2.txt correct)" = "$want_c" ] && [ "$(fb_metric fb2.txt incorrect)" = "$want_i" ] && break
        sleep 0.1
    done
    expect_eq "feedback mixed: server's correct (both runs)" "$(fb_metric fb2.txt correct)" "$want_c"
    expect_eq "feedback mixed: server's incorrect (both runs)" "$(fb_metric fb2.txt incorrect)" "$want_i"
    expect_eq "feedback mixed: nothing rejected (no duplicate ids across runs)" \
        "$(delta fb0.txt fb2.txt vigil_feedback_rejected_total)" 0
    for code in 200 400 404 405; do
        expect_eq "feedback mixed: server's $code on the predict route" \
            "$(delta fb1.txt fb2.txt vigil_http_requests_total "$route" "code=\"$code\"")" \
            "$(jq ".statuses[\"$code\"] // 0" feedmix.json)"
    done
    live=$(metric fb2.txt vigil_live_accuracy 'model="iris"')
    if awk -v a="$live" -v c="$want_c" -v i="$want_i" \
        'BEGIN { d = a - c / (c + i); exit !(d < 1e-9 && d > -1e-9) }'; then ok; else
        bad "feedback mixed: vigil_live_accuracy $live, expected $want_c / ($want_c + $want_i)"
    fi

    # a regressor: every feedback is "received", counted so by the server; no label noise
    load fbreg 0 --url "$URL" --model reg --rate "$RATE" --duration 1s --data reg.csv --target y \
        --feedback 0.5 --json
    check_counts fbreg
    check "feedback regressor: received, no classes" \
        '.ok == .sent and .feedback.selected == (.ok / 2 | floor) and .feedback.received == .feedback.sent and .feedback.correct + .feedback.incorrect == 0 and .feedback.expected_live_accuracy == null and (has("model_accuracy") | not)' \
        fbreg.json
    want=$(jq .feedback.received fbreg.json)
    for _ in $(seq 30); do
        scrape fb3.txt
        got=$(printf '%.0f' "$(metric fb3.txt vigil_feedback_total 'model="reg"' 'outcome="received"')")
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    expect_eq "feedback regressor: server's vigil_feedback_total{outcome=received}" "$got" "$want"
    expect_status 2 "--label-noise for a regressor" -- "$VIGIL" load --url "$URL" --model reg \
        --rate 10 --duration 1s --data reg.csv --target y --feedback 1 --label-noise 0.1
    expect_err "model 'reg' is a regressor, so there is no other label" "--label-noise for a regressor: message"

    server_stop
    expect_eq "feedback server exit status" "$SERVER_EXIT" 0
    check_sanitizers "$SERVER_LOG" "feedback server log"
fi
# feedback the server refuses (here: a server with feedback off) makes the run fail
if server_start fboff --host 127.0.0.1 --port 0 --models repo --feedback off; then
    load feedoff 1 --url "$SERVER_URL" --model iris --rate 200 --duration 1s --data "$IRIS" \
        --target species --feedback 1 --json
    check "feedback refused: counted as failed feedback, exit 1" \
        '.ok == .sent and .feedback.failed == .feedback.sent and .feedback.sent > 0 and .exit_status == 1' \
        feedoff.json
    server_stop
    check_sanitizers "$SERVER_LOG" "feedback-off server log"
fi
cat ./*.err >load.err 2>/dev/null
check_sanitizers load.err "vigil load stderr"

# ---- coordinated omission: a server that stalls once ---------------------------------------------
# Open loop at rate R against a server that stops answering for S once: the requests due during
# the stall all wait until its end, so the one due x after its start takes about S - x. Those
# slower than S/2 are the ones due in the first half of the stall: about R*S/2 of them (a
# closed-loop tool would see at most one slow request per connection: 8 here).
STALL_MS=500
co_run() { # co_run NAME STALL_AFTER_MS STALL_MS LOAD_ARGS...
    local name=$1 after=$2 stall=$3
    shift 3
    rm -f "$name.port"
    "$STALL" "$name.port" "$after" "$stall" 60 >"$name.server" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do [ -s "$name.port" ] && break; sleep 0.1; done
    load "$name" "$@" --url "http://127.0.0.1:$(cat "$name.port")"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}
co_run co 1000 "$STALL_MS" 0 --path /x --rate "$CO_RATE" --duration 3s --connections 8 --json
check_counts co
expected=$((CO_RATE * STALL_MS / 2000))
slow=$(jq '.answered - ([.latency_histogram_ms[] | select(.le_ms == 250)][0].count)' co.json)
if [ "$slow" -ge $((expected * 7 / 10)) ] && [ "$slow" -le $((expected * 2 + 10)) ]; then ok; else
    bad "coordinated omission: $slow requests slower than 250 ms, expected about $expected (R*S/2)"
fi
check "coordinated omission: p99 and max show the stall, p50 does not" \
    '.latency_ms.p99 > 250 and .latency_ms.max > 400 and .latency_ms.p50 < 125 and .sent == .scheduled and .failed == 0' co.json
held=$(jq '.held' co.server 2>/dev/null || echo -1)
if [ "$held" -ge 1 ] && [ "$held" -le 8 ]; then ok; else
    bad "coordinated omission: the server held $held requests, expected 1..8 (one per connection)"
fi

# a stall longer than --timeout: those requests time out, the run fails
co_run stalltimeout 500 1500 1 --path /x --rate 200 --duration 2s --connections 4 --timeout 300ms --json
check_counts stalltimeout
check "timeouts: counted, run failed" '.timeouts >= 1 and .exit_status == 1' stalltimeout.json
cat co.err stalltimeout.err >load-stall.err 2>/dev/null
check_sanitizers load-stall.err "vigil load stderr (stall server)"

finish load
