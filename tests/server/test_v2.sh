#!/usr/bin/env bash
# Integration tests of the Open Inference Protocol (KServe v2) API (docs/v2-api.md): the real
# `vigil serve` on a free port with a temporary model repository (iris, plus "broken" and
# "badconfig", which fail to load), over HTTP with curl and jq.
#
# Usage: test_v2.sh VIGIL WORK_DIR
#    or: test_v2.sh VIGIL SLOW_CLIENTS HAMMER PROMTOOL WORK_DIR SOURCE_DIR  (as tests/cmake/server.cmake
#        calls every server suite; the load tools are not used here)
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
VIGIL=$1
if [ $# -ge 6 ]; then
    WORK=$5
    SRC=$6
else
    WORK=$2
    SRC=$HERE/../..
fi
case $VIGIL in /*) ;; *) VIGIL=$PWD/$VIGIL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
# shellcheck disable=SC2034  # read by common.sh: every curl gets -m 5
CURL_TIMEOUT=5
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1
make_test_repo repo "$SRC" || exit 1

# expect_error NAME CODE PATTERN: status CODE and an {"error": ...} body matching PATTERN.
expect_error() {
    expect_code "$2" "$1"
    if jq -e --arg re "$3" '(.error | type == "string") and (.error | test($re))' resp.body \
        >/dev/null 2>&1; then ok; else
        bad "$1: error does not match /$3/: $(head -c 300 resp.body)"
    fi
}

# infer_body DATA [DATATYPE [SHAPE [EXTRA]]]: a request for iris' only input.
infer_body() {
    printf '{"inputs":[{"name":"input","shape":%s,"datatype":"%s","data":%s}]%s}' \
        "${3:-[1,4]}" "${2:-FP32}" "$1" "${4:-}"
}

# output NAME: the data of output NAME in resp.body, compact
output() {
    jq -c --arg n "$1" '.outputs[] | select(.name == $n) | .data' resp.body
}

server_start v2 --host 127.0.0.1 --port 0 --models repo --threads 2 --max-batch-rows 1000 || exit 1

# ---- server metadata and health ---------------------------------------------------------------
req GET /v2
expect_code 200 "GET /v2"
expect_json "server metadata" '.name == "vigil" and (.version | type == "string" and length > 0)
    and .extensions == ["model_repository"]'
expect_eq "Content-Type of /v2" "$(header Content-Type)" "application/json"
req GET /v2/health/live
expect_code 200 "live"
expect_json "live body" '. == {"live": true}'
req GET /v2/health/ready
expect_code 200 "ready with iris loaded"
expect_json "ready body" '. == {"ready": true}'

# ---- model metadata ---------------------------------------------------------------------------
IRIS_META='{"name":"iris","versions":["1"],"platform":"onnx",
    "inputs":[{"name":"input","datatype":"FP32","shape":[-1,4]}],
    "outputs":[{"name":"label","datatype":"BYTES","shape":[-1]},
               {"name":"probabilities","datatype":"FP32","shape":[-1,3]}]}'
for path in /v2/models/iris /v2/models/iris/versions/1; do
    req GET $path
    expect_code 200 "GET $path"
    expect_json "metadata of $path" ". == $IRIS_META"
done
req GET /v2/models/iris/versions/2
expect_error "metadata of a version that does not serve" 404 "version 1 serves"
req GET /v2/models/iris/versions/01
expect_error "metadata of version 01" 404 "version 1 serves"
req GET /v2/models/iris/versions/latest
expect_error "metadata of version 'latest'" 404 "no version 'latest'"
req GET /v2/models/nope
expect_error "metadata of an unknown model" 404 "unknown model 'nope'"
req GET /v2/models/broken
expect_error "metadata of a model that failed to load" 404 "no available versions.*failed to load"
req GET /v2/models/broken/versions/1
expect_error "metadata of the failed version" 503 "version 1 is not ready.*failed to load"

# ---- model readiness --------------------------------------------------------------------------
for path in /v2/models/iris/ready /v2/models/iris/versions/1/ready; do
    req GET $path
    expect_code 200 "GET $path"
    expect_json "body of $path" '. == {"name": "iris", "ready": true}'
done
for path in /v2/models/broken/ready /v2/models/broken/versions/1/ready /v2/models/badconfig/ready; do
    req GET $path
    expect_code 503 "GET $path"
    expect_json "body of $path" '.ready == false and (.name | type == "string")
        and (.reason | length > 0)'
done
req GET /v2/models/iris/versions/3/ready
expect_error "readiness of a version that does not serve" 404 "version 1 serves"
req GET /v2/models/nope/ready
expect_error "readiness of an unknown model" 404 "unknown model"

# ---- repository index -------------------------------------------------------------------------
req POST /v2/repository/index
expect_code 200 "index, no body"
expect_json "index lists every model" '[.[].name] == ["badconfig", "broken", "iris"]'
expect_json "index: iris ready" '.[] | select(.name == "iris") == {"name":"iris","version":"1",
    "state":"READY"}'
expect_json "index: broken unavailable with a reason" '.[] | select(.name == "broken")
    | .state == "UNAVAILABLE" and .version == "1" and (.reason | length > 0)'
expect_json "index: badconfig unavailable" \
    '.[] | select(.name == "badconfig") | .state == "UNAVAILABLE" and (.reason | length > 0)'
post_json /v2/repository/index '{"ready": true}'
expect_code 200 "index of ready models"
expect_json "index of ready models" '[.[].name] == ["iris"]'
post_json /v2/repository/index '{"ready": false}'
expect_json "index with ready false lists all" 'length == 3'
post_json /v2/repository/index '{}'
expect_json "index with {} lists all" 'length == 3'
post_json /v2/repository/index '{"ready": "yes"}'
expect_error "index with a bad filter" 400 "ready"
post_json /v2/repository/index '[1'
expect_error "index with a body that is not JSON" 400 "JSON"

# ---- inference --------------------------------------------------------------------------------
# Three rows of data/iris.csv, one per species.
ROWS_FLAT='[5.1,3.5,1.4,0.2, 5.9,3.0,4.2,1.5, 6.3,3.3,6.0,2.5]'
ROWS_NESTED='[[5.1,3.5,1.4,0.2],[5.9,3.0,4.2,1.5],[6.3,3.3,6.0,2.5]]'
SPECIES='["setosa","versicolor","virginica"]'

post_json /v2/models/iris/infer "$(infer_body "$ROWS_FLAT" FP32 '[3,4]' ',"id":"req-42"')"
expect_code 200 "infer, flat data"
expect_json "infer response header fields" '.model_name == "iris" and .model_version == "1"
    and .id == "req-42" and ([.outputs[].name] == ["label", "probabilities"])'
expect_json "labels of the known rows" ".outputs[0] == {\"name\":\"label\",\"datatype\":\"BYTES\",
    \"shape\":[3],\"data\":$SPECIES}"
expect_json "probabilities: FP32 [3,3]" '.outputs[1] | .datatype == "FP32" and .shape == [3,3]
    and (.data | length == 9)'
expect_json "probabilities: rows sum to 1" '.outputs[1].data as $p | [range(3) as $i
    | $p[3*$i:3*$i+3] | add] | all(. > 0.999 and . < 1.001)'
expect_json "probabilities: argmax is the label" '.outputs[1].data as $p | [range(3) as $i
    | $p[3*$i:3*$i+3] | index(max)] == [0,1,2]'
FLAT_PROBA=$(output probabilities)

post_json /v2/models/iris/infer "$(infer_body "$ROWS_NESTED" FP32 '[3,4]')" \
    -H 'X-Request-Id: my-request-7'
expect_code 200 "infer, nested data"
expect_json "nested data, same labels" ".outputs[0].data == $SPECIES"
expect_eq "nested data, same probabilities" "$(output probabilities)" "$FLAT_PROBA"
expect_json "without an id, the request id is echoed" '.id == "my-request-7"'
expect_eq "X-Request-Id header" "$(header X-Request-Id)" "my-request-7"

post_json /v2/models/iris/versions/1/infer \
    "$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[{"name":"label"}]')"
expect_code 200 "infer on /versions/1, label only"
expect_json "only the requested output" '[.outputs[].name] == ["label"]
    and .outputs[0].data == ["setosa"]'
post_json /v2/models/iris/infer "$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' \
    ',"outputs":[{"name":"probabilities"},{"name":"label","parameters":{"binary_data":false}}]')"
expect_code 200 "infer, outputs in request order"
expect_json "outputs in request order" '[.outputs[].name] == ["probabilities", "label"]'
expect_json "setosa probability" '.outputs[0].data[0] > 0.9'
post_json /v2/models/iris/infer "$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[]')"
expect_json "empty outputs list returns all" '[.outputs[].name] == ["label", "probabilities"]'
post_json /v2/models/iris/infer "$(infer_body '[]' FP32 '[0,4]')"
expect_code 200 "infer, zero rows"
expect_json "zero rows, empty outputs" '.outputs[0].shape == [0] and .outputs[0].data == []'

# A batch of 1,000 rows: the setosa row, then the virginica row, alternating.
BATCH=$(jq -nc '[range(1000) | if . % 2 == 0 then [5.1,3.5,1.4,0.2] else [6.3,3.3,6.0,2.5] end]')
post_json /v2/models/iris/infer "$(infer_body "$BATCH" FP32 '[1000,4]')"
expect_code 200 "infer, 1000 rows"
expect_json "1000 labels" '.outputs[0].shape == [1000] and ([.outputs[0].data[] | select(. ==
    "setosa")] | length) == 500 and .outputs[0].data[999] == "virginica"'

post_json /v2/models/iris/infer "$(infer_body "$(jq -nc '[range(1001) | [5.1,3.5,1.4,0.2]]')" FP32 \
    '[1001,4]')"
expect_error "infer, more rows than --max-batch-rows" 413 "1001 rows; at most 1000"

# Concurrent requests (two worker threads, so sessions are shared and reused): each answer is
# checked against the row it asked for.
for i in $(seq 0 39); do
    if [ $((i % 2)) = 0 ]; then echo "$i setosa 5.1,3.5,1.4,0.2"; else echo "$i virginica 6.3,3.3,6.0,2.5"; fi
done >concurrent.txt
# shellcheck disable=SC2016
xargs -P 8 -L 1 sh -c 'curl -sS -m 5 -H "Content-Type: application/json" --data-binary \
    "{\"id\":\"c$0\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[$2]}],\"outputs\":[{\"name\":\"label\"}]}" \
    "$3/v2/models/iris/infer" | jq -e --arg id "c$0" --arg want "$1" \
    ".id == \$id and .outputs[0].data == [\$want]" >/dev/null || echo "request $0 failed"' \
    <<<"$(sed "s|\$| $SERVER_URL|" concurrent.txt)" >concurrent.out 2>&1
if [ ! -s concurrent.out ]; then ok; else bad "concurrent requests: $(head -5 concurrent.out)"; fi

# ---- inference errors -------------------------------------------------------------------------
# name | body | status | pattern the error matches
while IFS='|' read -r name body code pattern; do
    [ -z "$name" ] && continue
    post_json /v2/models/iris/infer "$body"
    expect_error "infer: $name" "$code" "$pattern"
done <<EOF
wrong datatype|$(infer_body '[5.1,3.5,1.4,0.2]' FP64)|400|datatype FP64 does not match the model's FP32
lowercase datatype|$(infer_body '[5.1,3.5,1.4,0.2]' fp32)|400|datatype 'fp32' is not supported
unknown datatype|$(infer_body '[5.1,3.5,1.4,0.2]' FP16)|400|datatype 'FP16' is not supported
BYTES where FP32 expected|$(infer_body '["5.1","3.5","1.4","0.2"]' BYTES)|400|datatype BYTES does not match
too few elements|$(infer_body '[5.1,3.5,1.4]')|400|needs 4 elements, 'data' has 3
too many elements|$(infer_body '[5.1,3.5,1.4,0.2,1]')|400|needs 4 elements, 'data' has 5
nested row too short|$(infer_body '[[5.1,3.5,1.4,0.2],[1,2,3]]' FP32 '[2,4]')|400|nested data does not match shape \\[2,4\\]
nested, too many rows|$(infer_body '[[5.1,3.5,1.4,0.2],[1,2,3,4],[1,2,3,4]]' FP32 '[2,4]')|400|has 3 elements, expected 2
mixed nesting|$(infer_body '[5.1,3.5,1.4,0.2,[1,2,3,4]]' FP32 '[2,4]')|400|flat, or nested exactly
nested deeper than the shape|$(infer_body '[[[5.1],3.5,1.4,0.2]]' FP32 '[1,4]')|400|nested data does not match
non-numeric data|$(infer_body '[5.1,"x",1.4,0.2]')|400|element 1 is a string, expected a number
null in data|$(infer_body '[5.1,null,1.4,0.2]')|400|element 1 is null
boolean in FP32 data|$(infer_body '[5.1,true,1.4,0.2]')|400|element 1 is a boolean
FP32 out of range|$(infer_body '[5.1,1e39,1.4,0.2]')|400|element 1 .* out of range
FP32 overflow to infinity|$(infer_body '[5.1,1e999,1.4,0.2]')|400|out of range
data not an array|$(infer_body '5.1')|400|'data' must be an array
data missing|{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]}|400|'data' is missing
shape of the wrong rank|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[4]')|400|shape \\[4\\] does not match the model's \\[-1,4\\]
shape with the wrong width|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[2,2]')|400|does not match the model's
negative dimension|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[-1,4]')|400|shape dimensions must be integers
fractional dimension|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1.5,4]')|400|shape dimensions must be integers
more than 1e7 elements|$(infer_body '[]' FP32 '[2500001,4]')|413|more than 10000000 elements
missing input|{"inputs":[]}|400|missing input 'input'
inputs missing|{"id":"x"}|400|'inputs' must be an array
unknown input|{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}|400|unknown input 'features'; the model's inputs are: input
input given twice|{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}|400|given more than once
unknown output|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[{"name":"proba"}]')|400|unknown output 'proba'; the model's outputs are: label, probabilities
output requested twice|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[{"name":"label"},{"name":"label"}]')|400|more than once
outputs not an array|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":{"name":"label"}')|400|'outputs' must be an array
id not a string|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"id":42')|400|'id' must be a string
binary_data_output|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"parameters":{"binary_data_output":true}')|400|binary tensor data extension is not supported
binary_data on an output|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[{"name":"label","parameters":{"binary_data":true}}]')|400|binary tensor data extension
binary_data_size on an input|{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}|400|binary_data_size
classification|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"outputs":[{"name":"probabilities","parameters":{"classification":2}}]')|400|'classification' is not supported
parameters not an object|$(infer_body '[5.1,3.5,1.4,0.2]' FP32 '[1,4]' ',"parameters":[1]')|400|'parameters' must be an object
body not JSON|{"inputs":[|400|not valid JSON
trailing garbage|{"inputs":[]} {}|400|not valid JSON
body an array|[]|400|must be a JSON object
EOF

req POST /v2/models/iris/infer
expect_error "infer with an empty body" 400 "not valid JSON"
req POST /v2/models/iris/infer -H 'Content-Type: text/plain' --data-binary "$(infer_body '[1,2,3,4]')"
expect_code 415 "infer with a text/plain body"
req GET /v2/models/iris/infer
expect_code 405 "GET on infer"
post_json /v2/models/nope/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
expect_error "infer on an unknown model" 404 "unknown model 'nope'"
post_json /v2/models/iris/versions/2/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
expect_error "infer on a version that does not serve" 404 "version 1 serves"
post_json /v2/models/broken/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
expect_error "infer on a model that failed to load" 404 "no available versions.*failed to load"
post_json /v2/models/broken/versions/1/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
expect_error "infer on the failed version" 503 "not ready"

# The server still answers correctly after all those errors.
post_json /v2/models/iris/infer "$(infer_body "$ROWS_FLAT" FP32 '[3,4]')"
expect_code 200 "infer after the errors"
expect_json "labels after the errors" ".outputs[0].data == $SPECIES"

# ---- metrics ----------------------------------------------------------------------------------
# Every inference on a loaded model counts once by outcome; rows and predicted classes count on
# success (classes even when the probabilities output was not requested).
scrape before.prom
post_json /v2/models/iris/infer "$(infer_body "$ROWS_FLAT" FP32 '[3,4]')"
post_json /v2/models/iris/infer "$(infer_body '[5.1,3.5,1.4,0.2, 6.3,3.3,6.0,2.5]' FP32 '[2,4]' \
    ',"outputs":[{"name":"label"}]')"
post_json /v2/models/iris/infer "$(infer_body '[5.1,3.5,1.4]')"
post_json /v2/models/iris/infer "$(infer_body '[]' FP32 '[2500001,4]')"
post_json /v2/models/nope/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
post_json /v2/models/iris/versions/7/infer "$(infer_body '[5.1,3.5,1.4,0.2]')"
scrape after.prom
# delta NAME LABELS...: the change of a metric between the two scrapes
delta() {
    local a b
    a=$(metric before.prom "$@")
    b=$(metric after.prom "$@")
    [ "$a" = absent ] && a=0
    [ "$b" = absent ] && b=0
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.15g", b - a }'
}
expect_eq "success requests counted" "$(delta vigil_model_requests_total 'model="iris"' \
    'outcome="success"')" 2
expect_eq "bad_input requests counted" "$(delta vigil_model_requests_total 'model="iris"' \
    'outcome="bad_input"')" 2
expect_eq "no internal errors" "$(delta vigil_model_requests_total 'model="iris"' \
    'outcome="internal"')" 0
expect_eq "rows counted" "$(delta vigil_model_rows_total 'model="iris"')" 5
expect_eq "setosa predictions" "$(delta vigil_model_predictions_total 'model="iris"' \
    'class="setosa"')" 2
expect_eq "versicolor predictions" "$(delta vigil_model_predictions_total 'model="iris"' \
    'class="versicolor"')" 1
expect_eq "virginica predictions" "$(delta vigil_model_predictions_total 'model="iris"' \
    'class="virginica"')" 2

# ---- shutdown ---------------------------------------------------------------------------------
server_stop 15
expect_eq "exit status after SIGTERM" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log"

# ---- a server with no loadable model: live, not ready -----------------------------------------
mkdir -p repo_failed
cp -r repo/broken repo_failed/
server_start v2_failed --host 127.0.0.1 --port 0 --models repo_failed --threads 2 || exit 1
req GET /v2/health/live
expect_code 200 "live without models"
req GET /v2/health/ready
expect_code 503 "not ready without models"
expect_json "not ready body" '. == {"ready": false}'
post_json /v2/repository/index '{"ready": true}'
expect_json "no ready model in the index" '. == []'
req POST /v2/repository/index
expect_json "the failed model in the index" '[.[] | .name + ":" + .state] == ["broken:UNAVAILABLE"]'
server_stop 15
expect_eq "exit status after SIGTERM (no models)" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log (no models)"

finish server_v2
