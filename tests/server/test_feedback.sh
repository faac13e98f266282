#!/usr/bin/env bash
# Integration tests of ground-truth feedback (POST /feedback, POST /v2/models/{model}/feedback;
# docs/predict-api.md and docs/v2-api.md, "Feedback"; metrics in docs/monitoring.md): the real
# `vigil serve` on a free port with a temporary repository (iris, a regressor and a classifier
# with integer classes trained here, and the two models that fail to load), over HTTP with curl
# and jq.
#
# Usage: test_feedback.sh VIGIL SLOW_CLIENTS HAMMER PROMTOOL WORK_DIR SOURCE_DIR
#   (as tests/cmake/server.cmake calls every server suite; the load tools are not used here)
set -u

VIGIL=$1
PROMTOOL=$4
WORK=$5
SRC=$6
HERE=$(cd "$(dirname "$0")" && pwd)
case $VIGIL in /*) ;; *) VIGIL=$PWD/$VIGIL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

fresh_work_dir "$WORK"
make_test_repo repo "$SRC" || exit 1

# house: a regressor, y = 3a - b + 0.5 on a 10 x 6 grid; digits: classes 0, 1, 2 (INT64 labels).
{
    echo "a,b,y"
    for i in $(seq 0 59); do echo "$((i % 10)),$((i / 10)),$((3 * (i % 10) - i / 10)).5"; done
} >house.csv
{
    echo "a,b,cls"
    for i in $(seq 0 59); do
        a=$((i % 10))
        echo "$a,$((i / 10)),$((a < 3 ? 0 : a < 6 ? 1 : 2))"
    done
} >digits.csv
for args in "house.csv y house --task regression --test-size 0" "digits.csv cls digits"; do
    read -r data target name extra <<<"$args"
    # shellcheck disable=SC2086  # extra holds several options
    "$VIGIL" train --data "$data" --target "$target" --name "$name" --repo repo --trees 5 \
        --seed 1 --threads 1 $extra >"train_$name.log" 2>&1 || {
        echo "FAIL: cannot train $name:" >&2
        tail -5 "train_$name.log" >&2
        exit 1
    }
done

# expect_error NAME CODE PATTERN: status CODE and an {"error": ...} body matching PATTERN.
expect_error() {
    expect_code "$2" "$1"
    if jq -e --arg re "$3" '(.error | type == "string") and (.error | test($re))' resp.body \
        >/dev/null 2>&1; then ok; else
        bad "$1: error does not match /$3/: $(head -c 300 resp.body)"
    fi
}

row() {
    printf '{"sepal_length":%s,"sepal_width":%s,"petal_length":%s,"petal_width":%s}' "$@"
}
SETOSA=$(row 5.1 3.5 1.4 0.2)
VIRGINICA=$(row 6.7 3.0 5.2 2.3)

# predict ID BODY [MODEL]: a prediction under X-Request-Id ID, expected to succeed.
predict() {
    post_json "/models/${3:-iris}/predict" "$2" -H "X-Request-Id: $1"
    expect_code 200 "predict $1"
}
# feedback BODY [PATH]: POST the feedback body.
feedback() {
    post_json "${2:-/feedback}" "$1"
}

# ---- configuration ----------------------------------------------------------------------------
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout 20"
expect_status 0 "serve --help" -- "$VIGIL" serve --help
for opt in feedback feedback-store live-accuracy-window; do
    env_name=VIGIL_$(echo "$opt" | tr 'a-z-' 'A-Z_')
    if grep -q -- "--$opt " out.txt && grep -q -- "$env_name" out.txt; then ok; else
        bad "serve --help lacks --$opt or $env_name"
    fi
done
printf '{"feedback": "maybe"}' >cfg_bad_feedback.json
printf '{"feedback-store": 0}' >cfg_bad_store.json
# name | environment (VAR=value, or -) | arguments (may be empty) | pattern of the message
while IFS='|' read -r name envs args pattern; do
    [ -z "$name" ] && continue
    env_args=()
    [ "$envs" != "-" ] && env_args=("$envs")
    cmd_args=()
    [ -n "$args" ] && read -r -a cmd_args <<<"$args"
    expect_status 2 "bad config: $name" -- env "${env_args[@]}" "$VIGIL" serve --models repo \
        --host 127.0.0.1 --port 0 "${cmd_args[@]}" && expect_err "$pattern" "bad config: $name"
done <<'EOF'
feedback not on or off|-|--feedback maybe|--feedback: 'maybe' is not on or off
feedback empty|-|--feedback=|--feedback: '' is not on or off
store zero|-|--feedback-store 0|--feedback-store: '0' is not a whole number in \[1, 10000000\]
store too large|-|--feedback-store 10000001|not a whole number in \[1, 10000000\]
store with a suffix|-|--feedback-store 5K|--feedback-store: '5K'
window zero|-|--live-accuracy-window 0|--live-accuracy-window: '0' is not a whole number
window negative|VIGIL_LIVE_ACCURACY_WINDOW=-3||VIGIL_LIVE_ACCURACY_WINDOW: '-3'
feedback env|VIGIL_FEEDBACK=yes||VIGIL_FEEDBACK: 'yes' is not on or off
feedback file|-|--config cfg_bad_feedback.json|key "feedback": 'maybe' is not on or off
store file|-|--config cfg_bad_store.json|key "feedback-store": 0 is not a whole number
EOF

# ---- the main server --------------------------------------------------------------------------
server_start main --host 127.0.0.1 --port 0 --models repo --threads 2 --max-batch-rows 50 || exit 1
if grep -q "ground-truth feedback is on: the last 100000 predictions are kept, live accuracy over \
the last 1000 feedbacks" "$SERVER_LOG"; then ok; else bad "no feedback line in the log"; fi

scrape before.txt
if grep -qx 'vigil_live_accuracy{model="iris",version="1"} NaN' before.txt; then ok; else
    bad "live accuracy is not NaN before any feedback: $(grep '^vigil_live_accuracy{' before.txt)"
fi
# shellcheck disable=SC2089  # the quotes are part of the k="v" words
for s in 'vigil_live_accuracy_feedbacks model="iris"' \
    'vigil_feedback_total model="iris" outcome="correct"' \
    'vigil_feedback_total model="iris" outcome="incorrect"' \
    'vigil_feedback_total model="house" outcome="received"' \
    'vigil_feedback_absolute_error_count model="house"' \
    'vigil_feedback_rejected_total reason="unknown"' \
    'vigil_feedback_rejected_total reason="evicted"' \
    'vigil_feedback_rejected_total reason="duplicate"' \
    'vigil_feedback_rejected_total reason="invalid"'; do
    read -r -a words <<<"$s" # the name, then k="v" words
    expect_eq "at start: $s" "$(metric before.txt "${words[@]}")" 0
done
expect_eq "no live accuracy for a regressor" \
    "$(metric before.txt vigil_live_accuracy 'model="house"')" absent
expect_eq "no absolute error for a classifier" \
    "$(metric before.txt vigil_feedback_absolute_error_count 'model="iris"')" absent
expect_eq "no received outcome for a classifier" \
    "$(metric before.txt vigil_feedback_total 'model="iris"' 'outcome="received"')" absent

# One row: correct, then incorrect.
predict fb-1 "$SETOSA"
feedback '{"id": "fb-1", "label": "setosa"}'
expect_code 200 "feedback, correct"
expect_json "feedback answer, correct" '. == {"id": "fb-1", "model": "iris", "version": 1,
    "outcome": "correct"}'
predict fb-2 "$VIRGINICA"
feedback '{"label": "setosa", "id": "fb-2"}'
expect_code 200 "feedback, incorrect"
expect_json "feedback answer, incorrect" '.outcome == "incorrect" and .id == "fb-2"'

# Duplicates, unknown ids.
feedback '{"id": "fb-1", "label": "setosa"}'
expect_error "second feedback for fb-1" 409 "^prediction 'fb-1' already has feedback$"
feedback '{"id": "fb-2", "label": "virginica"}'
expect_error "second feedback with another label" 409 "already has feedback"
feedback '{"id": "never-made", "label": "setosa"}'
expect_error "unknown id" 404 "^no prediction with id 'never-made': never made or not kept$"
# Without X-Request-Id: the generated id in the answer is the one to use.
post_json /models/iris/predict "$SETOSA"
GEN_ID=$(jq -r .id resp.body)
feedback "{\"id\": \"$GEN_ID\", \"label\": \"versicolor\"}"
expect_code 200 "feedback under a generated id"
expect_json "generated id, incorrect" ".id == \"$GEN_ID\" and .outcome == \"incorrect\""

# A batch: rows under "<id>/<i>"; an array of feedbacks with mixed results, in order.
predict bat "{\"instances\": [$SETOSA, $VIRGINICA, $SETOSA]}"
feedback '{"id": "bat", "label": "setosa"}'
expect_error "the batch's own id is not a prediction" 404 "no prediction with id 'bat'"
feedback '[{"id": "bat/0", "label": "setosa"}, {"id": "bat/1", "label": "versicolor"},
    {"id": "bat/3", "label": "setosa"}, {"id": "bat/0", "label": "setosa"},
    {"id": "bat/2", "label": "rose"}, {"label": "setosa"}, {"id": "bat/2", "label": "setosa"},
    17]'
expect_code 200 "array of feedbacks"
expect_json "array: counts" '.accepted == 3 and .rejected == 5 and (.results | length) == 8'
expect_json "array: results in order" '[.results[] | .status] == [200, 200, 404, 409, 400, 400,
    200, 400]'
expect_json "array: outcomes" '[.results[] | .outcome // empty] == ["correct", "incorrect",
    "correct"]'
expect_json "array: ids" '[.results[] | .id] == ["bat/0", "bat/1", "bat/3", "bat/0", "bat/2",
    null, "bat/2", null]'
expect_json "array: errors" '(.results[2].error | test("no prediction with id .bat/3."))
    and (.results[3].error | test("already has feedback"))
    and (.results[4].error | test("not a class of model .iris."))
    and (.results[5].error | test("missing .id."))
    and (.results[7].error | test("must be an object"))
    and (.results[0] | keys) == ["id", "outcome", "status"]
    and (.results[2] | keys) == ["error", "id", "status"]'

# The Open Inference Protocol: one row under the request's "id", several under "<id>/<i>".
post_json /v2/models/iris/infer '{"id": "v2-a", "inputs": [{"name": "input", "shape": [1, 4],
    "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
expect_code 200 "v2 infer, one row"
post_json /v2/models/iris/infer '{"id": "v2-b", "inputs": [{"name": "input", "shape": [2, 4],
    "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}'
expect_code 200 "v2 infer, two rows"
post_json /v2/models/iris/infer '{"inputs": [{"name": "input", "shape": [1, 4],
    "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]}' -H 'X-Request-Id: v2-c'
expect_code 200 "v2 infer without an id"
feedback '{"id": "v2-a", "label": "setosa"}' /v2/models/iris/feedback
expect_code 200 "v2 feedback"
expect_json "v2 feedback answer" '. == {"id": "v2-a", "model": "iris", "version": 1,
    "outcome": "correct"}'
feedback '[{"id": "v2-b/0", "label": "setosa"}, {"id": "v2-b/1", "label": "virginica"},
    {"id": "v2-c", "label": "virginica"}]' /v2/models/iris/feedback
expect_json "v2 feedback array" '.accepted == 3 and ([.results[].outcome] | unique) == ["correct"]'
feedback '{"id": "v2-b", "label": "setosa"}'
expect_error "v2 request id of several rows" 404 "no prediction with id 'v2-b'"
# Ids: a 64-character X-Request-Id (the longest kept as a request id) works for every row of a
# batch; a /v2 "id" longer than 104 bytes (VG_FEEDBACK_MAX_ID) is not kept, one of 104 is.
ID64=$(printf 'r%.0s' $(seq 64))
predict "$ID64" "{\"instances\": [$SETOSA, $VIRGINICA]}"
feedback "[{\"id\": \"$ID64/0\", \"label\": \"setosa\"},
    {\"id\": \"$ID64/1\", \"label\": \"virginica\"}]"
expect_json "64-character request id, batch" '.accepted == 2'
ID105=$(printf "v%.0s" $(seq 105))
post_json /v2/models/iris/infer "{\"id\": \"$ID105\", \"inputs\": [{\"name\": \"input\",
    \"shape\": [1, 4], \"datatype\": \"FP32\", \"data\": [5.1, 3.5, 1.4, 0.2]}]}"
expect_code 200 "v2 infer with a 105-byte id"
feedback "{\"id\": \"$ID105\", \"label\": \"setosa\"}"
expect_error "a 105-byte id is not kept" 404 "never made or not kept"
ID104=${ID105:1}
post_json /v2/models/iris/infer "{\"id\": \"$ID104\", \"inputs\": [{\"name\": \"input\",
    \"shape\": [1, 4], \"datatype\": \"FP32\", \"data\": [5.1, 3.5, 1.4, 0.2]}]}"
feedback "{\"id\": \"$ID104\", \"label\": \"setosa\"}"
expect_json "a 104-byte id is kept" '.outcome == "correct"'

# Another model's prediction on the /v2 route; unknown and failed models.
predict h-1 '{"a": 2, "b": 1}' house
feedback '{"id": "h-1", "label": 5}' /v2/models/iris/feedback
expect_error "v2 feedback, prediction of another model" 404 \
    "^prediction 'h-1' was not made by model 'iris' \\(model 'house' made it\\)$"
feedback '{"id": "fb-1", "label": "setosa"}' /v2/models/nosuch/feedback
expect_error "v2 feedback, unknown model" 404 "^unknown model 'nosuch'$"
feedback '{"id": "fb-1", "label": "setosa"}' /v2/models/broken/feedback
expect_error "v2 feedback, model that failed to load" 404 "no available versions"
req GET /feedback
expect_code 405 "GET /feedback"
expect_eq "Allow header" "$(header Allow)" "POST"
req POST /feedback -H 'Content-Type: text/plain' --data-binary '{"id": "fb-1", "label": "setosa"}'
expect_code 415 "feedback as text/plain"

# Regression: outcome "received", the absolute error in the histogram.
predict h-2 '{"a": 4, "b": 2}' house
H2=$(jq .prediction resp.body)
feedback "{\"id\": \"h-2\", \"label\": $(awk -v p="$H2" 'BEGIN { printf "%.9g", p + 3 }')}"
expect_code 200 "regression feedback"
expect_json "regression outcome" '. == {"id": "h-2", "model": "house", "version": 1,
    "outcome": "received"}'
predict h-3 '{"a": 7, "b": 0}' house
feedback "{\"id\": \"h-3\", \"label\": $(jq .prediction resp.body)}"
expect_code 200 "regression feedback, exact"
feedback '{"id": "h-1", "label": "5"}'
expect_error "regression label as a string" 400 \
    "^'label' must be a number for regression model 'house', got a string$"
feedback '{"id": "h-1", "label": 1e999}'
expect_error "regression label not finite" 400 "must be a finite number"

# Numbers as class names: digits has classes "0", "1", "2".
predict d-1 '{"a": 8, "b": 1}' digits
D1=$(jq .prediction resp.body)
expect_eq "digits predicts class 2" "$D1" 2
feedback '{"id": "d-1", "label": 2}'
expect_json "numeric label, correct" '.outcome == "correct" and .model == "digits"'
predict d-2 '{"a": 1, "b": 1}' digits
feedback '{"id": "d-2", "label": "2.0"}'
expect_error "string label must name the class exactly" 400 "'label' '2.0' is not a class"
feedback '{"id": "d-2", "label": 7}'
expect_error "numeric label of no class" 400 \
    "^'label' 7 is not a class of model 'digits' \\(its classes: '0', '1', '2'\\)$"
feedback '{"id": "d-2", "label": 2.0}'
expect_json "2.0 names class 2; d-2 is class 0" '.outcome == "incorrect"'

# Bad bodies: each 400 (413 for too many) with its message.
while IFS='|' read -r name body code pattern; do
    [ -z "$name" ] && continue
    feedback "$body"
    expect_error "bad body: $name" "$code" "$pattern"
done <<'EOF'
malformed JSON|{"id": "fb-1", "label": |400|^malformed JSON at byte
data after the value|{"id": "fb-1", "label": "setosa"} x|400|^malformed JSON at byte
not an object|"fb-1"|400|must be a feedback object .* or an array of them, got a string
missing id|{"label": "setosa"}|400|^missing 'id'
id not a string|{"id": 12, "label": "setosa"}|400|^'id' must be a string, got a number
missing label|{"id": "fb-9"}|400|^missing 'label'
label of the wrong type|{"id": "d-2", "label": true}|400|must be one of the classes of model 'digits' .*got a boolean
label null|{"id": "d-2", "label": null}|400|got null
unknown class|{"id": "d-2", "label": "rose"}|400|^'label' 'rose' is not a class of model 'digits'
unexpected key|{"id": "d-2", "label": 0, "weight": 2}|400|^unexpected key 'weight'
empty array|[]|400|^the array is empty
EOF
req POST /feedback -H 'Content-Type: application/json'
expect_error "empty body" 400 "^the request body is empty"
feedback "$(jq -nc '[range(51) | {id: "x\(.)", label: "setosa"}]')"
expect_error "51 feedbacks, max-batch-rows 50" 413 "^the array has 51 feedbacks; the limit is 50"

# 8 feedbacks for one prediction at once: exactly one is counted.
predict race-1 "$SETOSA"
seq 8 | xargs -P 8 -I{} curl -sS -m 5 -o /dev/null -w '%{http_code}\n' \
    -H 'Content-Type: application/json' --data-binary '{"id": "race-1", "label": "setosa"}' \
    "$SERVER_URL/feedback" >race.txt 2>&1
expect_eq "racing feedbacks: one 200" "$(grep -c '^200$' race.txt)" 1
expect_eq "racing feedbacks: seven 409" "$(grep -c '^409$' race.txt)" 7

# Exact metric values. Feedbacks accepted for iris so far: fb-1 correct, fb-2 incorrect, the
# generated id incorrect, bat/0 correct, bat/1 incorrect, bat/2 correct, v2-a, v2-b/0, v2-b/1,
# v2-c, the two rows of the 64-character id, the 104-byte id and race-1 correct: 11 correct, 3
# incorrect. Then K more, every fourth one incorrect.
K=20
for i in $(seq 0 $((K - 1))); do
    if [ $((i % 4)) = 0 ]; then predict "k-$i" "$VIRGINICA"; else predict "k-$i" "$SETOSA"; fi
done
feedback "$(jq -nc --argjson k $K '[range($k) | {id: "k-\(.)", label: "setosa"}]')"
expect_json "K feedbacks accepted" ".accepted == $K and .rejected == 0"
scrape after.txt
CORRECT=$((11 + K - K / 4))
INCORRECT=$((3 + K / 4))
expect_eq "correct feedbacks" "$(metric after.txt vigil_feedback_total 'model="iris"' \
    'outcome="correct"')" $CORRECT
expect_eq "incorrect feedbacks" "$(metric after.txt vigil_feedback_total 'model="iris"' \
    'outcome="incorrect"')" $INCORRECT
expect_eq "live accuracy feedbacks" "$(metric after.txt vigil_live_accuracy_feedbacks \
    'model="iris"')" $((CORRECT + INCORRECT))
expect_eq "live accuracy" "$(metric after.txt vigil_live_accuracy 'model="iris"')" \
    "$(awk -v c=$CORRECT -v n=$((CORRECT + INCORRECT)) 'BEGIN { printf "%.15g", c / n }')"
expect_eq "digits: correct" "$(metric after.txt vigil_feedback_total 'model="digits"' \
    'outcome="correct"')" 1
expect_eq "digits: incorrect" "$(metric after.txt vigil_feedback_total 'model="digits"' \
    'outcome="incorrect"')" 1
expect_eq "digits: live accuracy" "$(metric after.txt vigil_live_accuracy 'model="digits"')" 0.5
expect_eq "house: received" "$(metric after.txt vigil_feedback_total 'model="house"' \
    'outcome="received"')" 2
expect_eq "house: histogram count" "$(metric after.txt vigil_feedback_absolute_error_count \
    'model="house"')" 2
if awk -v s="$(metric after.txt vigil_feedback_absolute_error_sum 'model="house"')" \
    'BEGIN { exit !(s > 2.99999 && s < 3.00001) }'; then ok; else
    bad "house: absolute error sum $(metric after.txt vigil_feedback_absolute_error_sum \
        'model="house"'), expected 3"
fi
for b in '0.001 1' '2.5 1' '5 2' '+Inf 2'; do
    read -r le want <<<"$b"
    expect_eq "house: bucket le=$le" "$(metric after.txt vigil_feedback_absolute_error_bucket \
        'model="house"' "le=\"$le\"")" "$want"
done
# Rejections. unknown: never-made, bat, bat/3, v2-b, the 105-byte id, h-1 on the iris route (the
# unknown and failed models of the /v2 route are not feedbacks refused but 404s of the route);
# evicted: none here; duplicate: fb-1, fb-2, bat/0 and the 7 racing ones.
expect_eq "rejected: unknown" "$(metric after.txt vigil_feedback_rejected_total \
    'reason="unknown"')" 6
expect_eq "rejected: evicted" "$(metric after.txt vigil_feedback_rejected_total \
    'reason="evicted"')" 0
expect_eq "rejected: duplicate" "$(metric after.txt vigil_feedback_rejected_total \
    'reason="duplicate"')" $((3 + 7))
# invalid: rose, missing id, 17 (array); h-1 "5", 1e999; d-2 "2.0", 7; the 11 bad bodies, the
# empty body and the 51-item array.
expect_eq "rejected: invalid" "$(metric after.txt vigil_feedback_rejected_total \
    'reason="invalid"')" $((3 + 2 + 2 + 11 + 1 + 1))
if [ -x "$PROMTOOL" ] || command -v "$PROMTOOL" >/dev/null 2>&1; then
    if "$PROMTOOL" check metrics <after.txt >promtool.txt 2>&1; then ok; else
        bad "promtool check metrics: $(head -5 promtool.txt)"
    fi
else
    bad "promtool not found ($PROMTOOL)"
fi
server_stop 15
expect_eq "exit status after SIGTERM" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log"

# ---- a store of 5 predictions, a live-accuracy window of 4 ------------------------------------
server_start small --host 127.0.0.1 --port 0 --models repo --threads 2 --feedback-store 5 \
    --live-accuracy-window 4 || exit 1
for i in $(seq 0 9); do predict "e-$i" "$SETOSA"; done
feedback '{"id": "e-0", "label": "setosa"}'
expect_error "evicted prediction" 404 \
    "^prediction 'e-0' was evicted from the feedback store \\(it keeps the last 5 predictions\\)$"
feedback '{"id": "e-4", "label": "setosa"}'
expect_error "the last evicted one" 404 "was evicted"
feedback '{"id": "e-never", "label": "setosa"}'
expect_error "never made, with a small store" 404 "never made or not kept"
feedback '[{"id": "e-5", "label": "setosa"}, {"id": "e-6", "label": "virginica"},
    {"id": "e-7", "label": "setosa"}, {"id": "e-8", "label": "setosa"},
    {"id": "e-9", "label": "virginica"}, {"id": "e-3", "label": "setosa"}]'
expect_json "the kept five" '[.results[].status] == [200, 200, 200, 200, 200, 404]
    and (.results[5].error | test("evicted"))'
# A batch larger than the store: its first rows are evicted by its last ones.
predict big "{\"instances\": [$SETOSA, $SETOSA, $SETOSA, $SETOSA, $SETOSA, $SETOSA, $SETOSA]}"
feedback '[{"id": "big/0", "label": "setosa"}, {"id": "big/1", "label": "setosa"},
    {"id": "big/2", "label": "setosa"}, {"id": "big/6", "label": "setosa"}]'
expect_json "batch over the store" '[.results[].status] == [404, 404, 200, 200]'
scrape small.txt
# window of 4 over: e-5 c, e-6 i, e-7 c, e-8 c, e-9 i, big/2 c, big/6 c -> last 4: c i c c
expect_eq "window: feedbacks" "$(metric small.txt vigil_live_accuracy_feedbacks \
    'model="iris"')" 4
expect_eq "window: accuracy" "$(metric small.txt vigil_live_accuracy 'model="iris"')" 0.75
expect_eq "window: all-time counts" "$(metric small.txt vigil_feedback_total \
    'model="iris"')" 7
expect_eq "rejected: evicted" "$(metric small.txt vigil_feedback_rejected_total \
    'reason="evicted"')" 5
expect_eq "rejected: unknown" "$(metric small.txt vigil_feedback_rejected_total \
    'reason="unknown"')" 1
server_stop 15
expect_eq "exit status (small store)" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log (small store)"

# ---- --feedback off ---------------------------------------------------------------------------
printf '{"feedback": false}' >cfg_off.json
for how in "flag|--feedback off" "env|" "file|--config cfg_off.json"; do
    IFS='|' read -r kind arg <<<"$how"
    [ "$kind" = env ] && export VIGIL_FEEDBACK=off
    # shellcheck disable=SC2086  # the option and its value, or nothing
    server_start "off_$kind" --host 127.0.0.1 --port 0 --models repo --threads 2 $arg || exit 1
    unset VIGIL_FEEDBACK
    predict off-1 "$SETOSA"
    feedback '{"id": "off-1", "label": "setosa"}'
    expect_error "feedback off ($kind)" 503 "^feedback is disabled \\(--feedback off\\)$"
    feedback '{"id": "off-1", "label": "setosa"}' /v2/models/iris/feedback
    expect_error "v2 feedback off ($kind)" 503 "feedback is disabled"
    scrape "off_$kind.txt"
    if grep -q 'vigil_feedback\|vigil_live_accuracy' "off_$kind.txt"; then
        bad "feedback off ($kind): feedback series are exposed"
    else ok; fi
    if grep -q "ground-truth feedback is off (--feedback off)" "$SERVER_LOG"; then ok; else
        bad "feedback off ($kind): no log line"
    fi
    server_stop 15
    expect_eq "exit status (feedback off, $kind)" "$SERVER_EXIT" 0
    check_sanitizers "$SERVER_LOG" "server log (feedback off, $kind)"
done

finish server_feedback
