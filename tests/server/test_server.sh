#!/usr/bin/env bash
# Integration tests of `vigil serve` (docs/testing-server.md): the real server on a free port
# with a temporary model repository, over HTTP with curl and jq.
#
# Usage: test_server.sh VIGIL SLOW_CLIENTS HAMMER PROMTOOL WORK_DIR SOURCE_DIR
#   SLOW_CLIENTS, HAMMER  tests/tools/http_slow_clients and http_hammer
#   SOURCE_DIR            the source tree (models/iris, data/iris.csv)
set -u

VIGIL=$1
SLOW_CLIENTS=$2
HAMMER=$3
PROMTOOL=$4
WORK=$5
SRC=$6
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

fresh_work_dir "$WORK"

# 1,000 client sockets here and 1,000 accepted ones in the server, plus the server's own files.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi

make_test_repo repo "$SRC" || exit 1
IRIS_ACCURACY=$(jq '.metrics.accuracy' repo/iris/1/config.json)

# row A B C D: one prediction row as the JSON object /predict takes
row() {
    printf '{"sepal_length":%s,"sepal_width":%s,"petal_length":%s,"petal_width":%s}' "$@"
}
SETOSA=$(row 5.1 3.5 1.4 0.2)
VIRGINICA=$(row 6.7 3.0 5.2 2.3)

# ---- configuration (no server runs) ---------------------------------------------------------
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout 20"

expect_status 0 "serve --help" -- "$VIGIL" serve --help
for opt in models host port threads default-model max-body-bytes timeout max-connections \
    shutdown-grace access-log max-batch-rows config; do
    env_name=VIGIL_$(echo "$opt" | tr 'a-z-' 'A-Z_')
    if grep -q -- "--$opt " out.txt && grep -q -- "$env_name" out.txt; then ok; else
        bad "serve --help lacks --$opt or $env_name"
    fi
done

printf '{"port": 70000}' >cfg_bad_port.json
printf '{"port": 8000, "frobnicate": 1}' >cfg_unknown_key.json
printf '{"port": ' >cfg_not_json.json
printf '["port", 8000]' >cfg_array.json
printf '{"threads": "two"}' >cfg_threads_string.json
# name | environment (space-separated VAR=value, or -) | arguments after "serve --models repo"
while IFS='|' read -r name envs args; do
    [ -z "$name" ] && continue
    env_args=()
    [ "$envs" != "-" ] && read -r -a env_args <<<"$envs"
    read -r -a cmd_args <<<"$args"
    expect_status 2 "bad config: $name" -- env "${env_args[@]}" "$VIGIL" serve --models repo \
        --host 127.0.0.1 "${cmd_args[@]}" && expect_err "^vigil serve: " "bad config: $name message"
done <<'EOF'
port too large|-|--port 65536
negative port|-|--port -1
port not a number|-|--port http
port empty|-|--port=
threads zero|-|--threads 0
threads too many|-|--threads 100000
body size suffix|-|--max-body-bytes 10X
body size zero|-|--max-body-bytes 0
timeout negative|-|--timeout -5
grace not a number|-|--shutdown-grace soon
max connections zero|-|--max-connections 0
batch rows zero|-|--max-batch-rows 0
unknown option|-|--frobnicate 1
option without value|-|--port
stray argument|-|extra
empty models|-|--models=
config file missing|-|--config does-not-exist.json
config not JSON|-|--config cfg_not_json.json
config not an object|-|--config cfg_array.json
config unknown key|-|--config cfg_unknown_key.json
config bad port|-|--config cfg_bad_port.json
config threads string|-|--config cfg_threads_string.json
env port not a number|VIGIL_PORT=eighty|--port 0
env threads zero|VIGIL_THREADS=0|--port 0
env config missing|VIGIL_CONFIG=nowhere.json|--port 0
EOF

# Start-up failures that are not usage errors exit 1.
expect_status 1 "missing repository" -- "$VIGIL" serve --models does-not-exist --port 0 \
    --host 127.0.0.1
expect_status 1 "unwritable access log" -- "$VIGIL" serve --models repo --port 0 \
    --host 127.0.0.1 --access-log no-such-dir/access.log
# shellcheck disable=SC2034
VG_TEST_TIMEOUT=""

# Which layer wins: argv > environment > config file > defaults.
P_FILE=$(free_port)
P_ENV=$(free_port)
P_ARG=$(free_port)
while [ "$P_ENV" = "$P_FILE" ]; do P_ENV=$(free_port); done
while [ "$P_ARG" = "$P_FILE" ] || [ "$P_ARG" = "$P_ENV" ]; do P_ARG=$(free_port); done
jq -n --argjson port "$P_FILE" '{port: $port, models: "repo", host: "127.0.0.1", threads: 1}' \
    >cfg.json
jq -n '{port: 0, models: "repo", host: "127.0.0.1", "max-body-bytes": "2K",
    "access-log": "cfg_access.log"}' >cfg_limits.json

# config_server NAME WANT_PORT [ARGS...]: starts a server, checks the port it chose, stops it
config_server() {
    local name=$1 want=$2
    shift 2
    if server_start "$name" "$@"; then
        expect_eq "$name: port" "$SERVER_PORT" "$want"
        req GET /health
        expect_code 200 "$name: /health"
        server_stop
        expect_eq "$name: exit status after SIGTERM" "$SERVER_EXIT" 0
    else
        bad "$name: server did not start"
    fi
}
VIGIL_PORT=$P_ENV VIGIL_MODELS=repo VIGIL_HOST=127.0.0.1 VIGIL_THREADS=1 \
    config_server env_only "$P_ENV"
config_server file_only "$P_FILE" --config cfg.json
VIGIL_CONFIG=cfg.json config_server file_from_env "$P_FILE"
VIGIL_PORT=$P_ENV config_server env_beats_file "$P_ENV" --config cfg.json
VIGIL_PORT=$P_ENV config_server argv_beats_env "$P_ARG" --config cfg.json --port "$P_ARG"

# The file's other keys are honoured too: max-body-bytes 2K, the access log.
if server_start file_limits --config cfg_limits.json; then
    post_json /predict "$SETOSA"
    expect_code 200 "config file: small body accepted"
    post_json /predict "{\"pad\":\"$(head -c 3000 /dev/zero | tr '\0' a)\"}"
    expect_code 413 "config file: max-body-bytes 2K gives 413 past it"
    server_stop
    expect_eq "file_limits: exit status" "$SERVER_EXIT" 0
    if [ "$(grep -c . cfg_access.log 2>/dev/null)" = 2 ]; then ok; else
        bad "config file: access-log from the file has $(grep -c . cfg_access.log 2>/dev/null) lines, expected 2"
    fi
fi

# ---- the main server ------------------------------------------------------------------------
T_START=$(date +%s)
if ! server_start main --host 127.0.0.1 --port 0 --models repo --threads 2 \
    --access-log access.log --shutdown-grace 10; then
    finish server
    exit 1
fi
MAIN_PID=$SERVER_PID
echo "main server: $SERVER_URL (pid $MAIN_PID)"

# Models that fail to load are logged with their reason (broken: not ONNX; badconfig: not JSON);
# the others serve.
for m in broken:ONNX badconfig:JSON; do
    if grep -E "model ${m%%:*} .*not loaded: " "$SERVER_LOG" | grep -q "${m#*:}"; then ok; else
        bad "start-up log does not say why '${m%%:*}' failed: $(head -c 600 "$SERVER_LOG")"
    fi
done

# A second server on the same port cannot start: exit 1.
VG_TEST_TIMEOUT="timeout 20" expect_status 1 "address in use" -- "$VIGIL" serve --models repo \
    --host 127.0.0.1 --port "$SERVER_PORT"

# ---- exact metrics: K good and M bad /predict requests on a fresh server --------------------
K_SINGLE=34
K_BATCH=3
K=$((K_SINGLE + K_BATCH))
BATCH="{\"instances\":[$SETOSA,$SETOSA,$VIRGINICA,$SETOSA,$VIRGINICA]}"
n_setosa=0
n_virginica=0
for i in $(seq "$K_SINGLE"); do
    if [ $((i % 5)) -lt 3 ]; then
        post_json /predict "$SETOSA"
        n_setosa=$((n_setosa + 1))
    else
        post_json /predict "$VIRGINICA"
        n_virginica=$((n_virginica + 1))
    fi
    [ "$STATUS" = 200 ] || bad "exact metrics: request $i answered $STATUS: $(head -c 300 resp.body)"
done
for i in $(seq "$K_BATCH"); do
    post_json /predict "$BATCH"
    [ "$STATUS" = 200 ] || bad "exact metrics: batch $i answered $STATUS: $(head -c 300 resp.body)"
    n_setosa=$((n_setosa + 3))
    n_virginica=$((n_virginica + 2))
done
ROWS=$((K_SINGLE + 5 * K_BATCH))
# M requests that are valid JSON but bad input for the model: each is a 400 and a bad_input.
M=0
for body in "$(row 5.1 3.5 1.4 '"wide"')" "$(row 5.1 3.5 1.4 null)" \
    '{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4}' \
    "$(row 5.1 3.5 1.4 0.2 | sed 's/}$/,"colour":1}/')" '{"instances":[]}'; do
    post_json /predict "$body"
    expect_code 400 "exact metrics: bad input $body"
    M=$((M + 1))
done
# libmicrohttpd reports a request complete (metrics, access log) just after its last byte is
# sent, so curl may return first: scrape until the last requests are counted.
for _ in $(seq 40); do
    scrape m1.prom
    [ "$(metric m1.prom vigil_http_requests_total 'route="/predict"')" = "$((K + M))" ] && break
    sleep 0.05
done
expect_eq "/metrics Content-Type" "$(header Content-Type)" "text/plain; version=0.0.4; charset=utf-8"

# expect_metric NAME WANT METRIC [k="v"...]
expect_metric() {
    local name=$1 want=$2 got
    shift 2
    got=$(metric m1.prom "$@")
    expect_eq "metric $name" "$got" "$want"
}
expect_metric "POST /predict 200" "$K" vigil_http_requests_total 'method="POST"' \
    'route="/predict"' 'code="200"'
expect_metric "POST /predict 400" "$M" vigil_http_requests_total 'method="POST"' \
    'route="/predict"' 'code="400"'
expect_metric "POST /predict, every code" "$((K + M))" vigil_http_requests_total \
    'method="POST"' 'route="/predict"'
expect_metric "requests success" "$K" vigil_model_requests_total 'model="iris"' 'version="1"' \
    'outcome="success"'
expect_metric "requests bad_input" "$M" vigil_model_requests_total 'model="iris"' 'version="1"' \
    'outcome="bad_input"'
expect_metric "requests internal" 0 vigil_model_requests_total 'model="iris"' 'version="1"' \
    'outcome="internal"'
expect_metric "rows" "$ROWS" vigil_model_rows_total 'model="iris"' 'version="1"'
expect_metric "predictions setosa" "$n_setosa" vigil_model_predictions_total 'model="iris"' \
    'version="1"' 'class="setosa"'
expect_metric "predictions virginica" "$n_virginica" vigil_model_predictions_total \
    'model="iris"' 'version="1"' 'class="virginica"'
expect_metric "predictions, every class" "$ROWS" vigil_model_predictions_total 'model="iris"' \
    'version="1"'
got=$(metric m1.prom vigil_model_predictions_total 'model="iris"' 'class="versicolor"')
if [ "$got" = 0 ] || [ "$got" = absent ]; then ok; else
    bad "metric predictions versicolor: got $got, expected 0"
fi
expect_metric "inference histogram count" "$K" vigil_model_inference_duration_seconds_count \
    'model="iris"' 'version="1"'
expect_metric "request duration count" "$((K + M))" vigil_http_request_duration_seconds_count \
    'method="POST"' 'route="/predict"'
for h in vigil_http_request_duration_seconds vigil_http_request_size_bytes \
    vigil_http_response_size_bytes vigil_model_inference_duration_seconds; do
    if grep -q "^# TYPE $h histogram$" m1.prom; then ok; else bad "no histogram $h"; fi
done
# every histogram series: the +Inf bucket equals _count
if awk '
    / / && $1 ~ /_bucket\{/ && $1 ~ /le="\+Inf"/ {
        key = $1; sub(/_bucket\{/, "{", key); sub(/,?le="\+Inf"/, "", key); sub(/\{\}/, "", key)
        inf[key] = $2 }
    $1 ~ /_count(\{|$)/ { key = $1; sub(/_count/, "", key); cnt[key] = $2 }
    END { bad = 0
          for (k in inf) if (!(k in cnt) || cnt[k] != inf[k]) { print "histogram " k ": +Inf " inf[k] " count " cnt[k]; bad = 1 }
          exit bad }' m1.prom >hist.txt; then ok; else bad "histograms: $(cat hist.txt)"; fi
expect_metric "request size count" "$((K + M))" vigil_http_request_size_bytes_count \
    'route="/predict"'
expect_metric "response size count" "$((K + M))" vigil_http_response_size_bytes_count \
    'route="/predict"'
got=$(metric m1.prom vigil_http_requests_in_flight)
if [ "$got" = 0 ] || [ "$got" = 1 ]; then ok; else
    bad "vigil_http_requests_in_flight during a scrape: $got, expected 0 or 1"
fi
expect_metric "model_info sha256 = sha256sum model.onnx" 1 vigil_model_info 'model="iris"' \
    'version="1"' "sha256=\"$IRIS_SHA256\""
expect_metric "holdout accuracy" "$IRIS_ACCURACY" vigil_model_holdout_accuracy 'model="iris"' \
    'version="1"'
expect_metric "iris loaded" 1 vigil_model_loaded 'model="iris"'
expect_metric "broken not loaded" 0 vigil_model_loaded 'model="broken"'
expect_metric "badconfig not loaded" 0 vigil_model_loaded 'model="badconfig"'
got=$(metric m1.prom vigil_model_load_duration_seconds 'model="iris"')
if [ "$got" != absent ] && awk -v v="$got" 'BEGIN { exit !(v >= 0 && v < 60) }'; then ok; else
    bad "vigil_model_load_duration_seconds{model=\"iris\"}: $got"
fi
got=$(metric m1.prom vigil_model_load_timestamp_seconds 'model="iris"')
if [ "$got" != absent ] &&
    awk -v v="$got" -v a="$T_START" -v b="$(date +%s)" 'BEGIN { exit !(v >= a - 5 && v <= b + 5) }'; then
    ok
else
    bad "vigil_model_load_timestamp_seconds{model=\"iris\"}: $got, expected between $T_START and now"
fi
for m in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
    process_open_fds process_max_fds process_start_time_seconds vigil_build_info; do
    if [ "$(metric m1.prom "$m")" != absent ]; then ok; else bad "metric $m missing"; fi
done

# ---- every endpoint -------------------------------------------------------------------------
req GET /
expect_code 200 "GET /"
expect_json "GET / is a JSON object" 'type == "object"'
expect_eq "GET / Content-Type" "$(header Content-Type)" "application/json"

req GET /health
expect_code 200 "GET /health"
expect_json "/health status" '.status == "healthy"'
expect_json "/health iris loaded with an accuracy" \
    '[.models[] | select(.name == "iris")] | length == 1 and (.[0].loaded == true)
     and (.[0].accuracy | type == "number")'
for m in broken:ONNX badconfig:JSON; do
    expect_json "/health ${m%%:*} not loaded, with its reason" \
        "[.models[] | select(.name == \"${m%%:*}\")] | length == 1 and (.[0].loaded == false)
         and (.[0].error | type == \"string\" and contains(\"${m#*:}\"))"
done

req GET /models
expect_code 200 "GET /models"
expect_json "/models lists three models" '[.models[].name] | sort == ["badconfig","broken","iris"]'
for m in broken:ONNX badconfig:JSON; do
    expect_json "/models ${m%%:*} not loaded, with its reason" \
        "[.models[] | select(.name == \"${m%%:*}\")][0] | .loaded == false
         and (.error | type == \"string\" and contains(\"${m#*:}\"))"
done

req GET /models/iris
expect_code 200 "GET /models/iris"
expect_json "/models/iris features" '.features == ["sepal_length","sepal_width","petal_length","petal_width"]'
expect_json "/models/iris classes" '.classes == ["setosa","versicolor","virginica"]'
expect_json "/models/iris reference" '.reference.features.sepal_length.bin_edges|length == 11'

# /metrics in OpenMetrics when asked for
req GET /metrics -H 'Accept: application/openmetrics-text; version=1.0.0'
expect_code 200 "GET /metrics as OpenMetrics"
expect_eq "OpenMetrics Content-Type" "$(header Content-Type)" \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"
expect_eq "OpenMetrics ends with # EOF" "$(tail -n 1 resp.body)" "# EOF"

# predictions
# expect_prediction NAME CLASS: the last answer predicts CLASS for one row, probabilities sum to 1
expect_prediction() {
    expect_code 200 "$1"
    expect_json "$1: predicts $2" ".prediction == \"$2\""
    expect_json "$1: probabilities sum to 1" \
        '[.probabilities[]] | add | . > 0.999 and . < 1.001'
    expect_json "$1: has an id" '.id | type == "string" and length > 0'
}
post_json /predict "$SETOSA"
expect_prediction "POST /predict setosa" setosa
post_json /predict "$VIRGINICA"
expect_prediction "POST /predict virginica" virginica
post_json /models/iris/predict "$SETOSA"
expect_prediction "POST /models/iris/predict" setosa
post_json /predict "$VIRGINICA" -H 'X-Request-Id: abc-123'
expect_json "X-Request-Id echoed as id" '.id == "abc-123"'
expect_eq "X-Request-Id echoed in the response header" "$(header X-Request-Id)" abc-123
post_json /predict "$SETOSA" -H "X-Request-Id: $(head -c 100 /dev/zero | tr '\0' x)"
expect_code 200 "overlong X-Request-Id"
expect_json "overlong X-Request-Id is replaced" '.id | length > 0 and length <= 64'
post_json /models/iris/predict "{\"instances\":[$SETOSA,$VIRGINICA]}"
expect_code 200 "instances"
expect_json "instances: one prediction per row" \
    '[.predictions[].prediction] == ["setosa","virginica"]'
expect_json "instances: probabilities sum to 1" \
    '[.predictions[] | [.probabilities[]] | add | . > 0.999 and . < 1.001] | all'
req POST /predict -H 'Content-Type:' --data-binary "$SETOSA"
expect_prediction "no Content-Type is taken as JSON" setosa
req POST /predict -H 'Content-Type: application/json; charset=utf-8' --data-binary "$SETOSA"
expect_prediction "application/json; charset=utf-8" setosa

# the Open Inference Protocol, a smoke test (tests/server/test_v2.sh goes deeper)
req GET /v2
expect_code 200 "GET /v2"
expect_json "/v2 names the server" '.name | type == "string"'
req GET /v2/health/live
expect_code 200 "GET /v2/health/live"
req GET /v2/health/ready
expect_code 200 "GET /v2/health/ready"
req GET /v2/models/iris
expect_code 200 "GET /v2/models/iris"
expect_json "/v2/models/iris metadata" '.name == "iris" and (.inputs | length) == 1'
req GET /v2/models/iris/versions/1/ready
expect_code 200 "GET /v2/models/iris/versions/1/ready"
post_json /v2/models/iris/infer \
    '{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}'
expect_code 200 "POST /v2/models/iris/infer"
expect_json "v2 infer labels" '.outputs[] | select(.name == "label") | .data == ["setosa","virginica"]'

# ---- bad input: one row per case; every answer is JSON with a non-empty "error" -------------
{ printf '{"pad":"'; head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' a; printf '"}'; } >big.json
{
    printf '{"instances":['
    for i in $(seq 10000); do printf '%s,' "$SETOSA"; done
    printf '%s]}' "$SETOSA"
} >rows10001.json
{ head -c 5000 /dev/zero | tr '\0' '['; head -c 5000 /dev/zero | tr '\0' ']'; } >deep.json

# name | method | path | content type (- = none) | body (@file, or - for none) | status |
# regex the .error must match (case-insensitive) | extra curl arguments
while IFS='|' read -r name method path ctype body want pattern extra; do
    [ -z "$name" ] && continue
    args=()
    [ "$ctype" != "-" ] && args+=(-H "Content-Type: $ctype")
    [ "$ctype" = "-" ] && args+=(-H "Content-Type:")
    if [ "$body" != "-" ]; then args+=(--data-binary "$body"); fi
    if [ -n "$extra" ]; then
        read -r -a more <<<"$extra"
        args+=("${more[@]}")
    fi
    req "$method" "$path" "${args[@]}"
    expect_code "$want" "bad input: $name"
    if jq -e --arg p "$pattern" '.error | type == "string" and length > 0 and test($p; "i")' \
        resp.body >/dev/null 2>&1; then ok; else
        bad "bad input: $name: .error does not match /$pattern/: $(head -c 300 resp.body)"
    fi
    if [ "$(header Content-Type)" = application/json ]; then ok; else
        bad "bad input: $name: Content-Type '$(header Content-Type)'"
    fi
done <<EOF
malformed JSON|POST|/predict|application/json|{"sepal_length": 5.1,|400|malformed JSON at byte|
trailing garbage|POST|/predict|application/json|$SETOSA}|400|malformed JSON|
top level is an array|POST|/predict|application/json|[]|400|must be a JSON object.*got an array|
string for a number|POST|/predict|application/json|$(row '"5.1"' 3.5 1.4 0.2)|400|'sepal_length' must be a number, got a string|
boolean for a number|POST|/predict|application/json|$(row 5.1 3.5 true 0.2)|400|'petal_length' must be a number, got a boolean|
null value|POST|/predict|application/json|$(row 5.1 null 1.4 0.2)|400|'sepal_width' must be a number, got null|
missing feature|POST|/predict|application/json|{"sepal_length":5.1,"sepal_width":3.5,"petal_width":0.2}|400|missing feature 'petal_length'|
unknown feature|POST|/predict|application/json|$(row 5.1 3.5 1.4 0.2 | sed 's/}$/,"colour":1}/')|400|unknown key 'colour'|
duplicate feature|POST|/predict|application/json|$(row 5.1 3.5 1.4 0.2 | sed 's/}$/,"sepal_width":1}/')|400|'sepal_width' appears more than once|
NaN literal|POST|/predict|application/json|$(row NaN 3.5 1.4 0.2)|400|NaN and Infinity are not JSON numbers|
Infinity literal|POST|/predict|application/json|$(row 5.1 Infinity 1.4 0.2)|400|NaN and Infinity are not JSON numbers|
-Infinity literal|POST|/predict|application/json|$(row 5.1 3.5 1.4 -Infinity)|400|NaN and Infinity are not JSON numbers|
float overflow 1e39|POST|/predict|application/json|$(row 5.1 3.5 1e39 0.2)|400|'petal_length' = 1e\\+39 is out of the float32 range|
empty body|POST|/predict|application/json|-|400|body is empty|
empty instances|POST|/predict|application/json|{"instances":[]}|400|'instances' is empty|
instances not an array|POST|/predict|application/json|{"instances":$SETOSA}|400|'instances' must be an array|
instance not an object|POST|/predict|application/json|{"instances":[[5.1,3.5,1.4,0.2]]}|400|instances\\[0\\] must be an object|
bad row inside a batch|POST|/predict|application/json|{"instances":[$SETOSA,$(row 5.1 3.5 1.4 '"x"')]}|400|instances\\[1\\]: feature 'petal_width'|
key beside instances|POST|/predict|application/json|{"instances":[$SETOSA],"extra":1}|400|unexpected key 'extra'|
nesting 5000 deep|POST|/predict|application/json|@deep.json|400|malformed JSON|
10001 rows|POST|/predict|application/json|@rows10001.json|413|10001 rows; the limit is 10000|
10 MB body|POST|/predict|application/json|@big.json|413|larger than the limit|
unknown model|POST|/models/nope/predict|application/json|$SETOSA|404|model 'nope' not found|
model that failed to load|POST|/models/broken/predict|application/json|$SETOSA|503|model 'broken' is not available: it failed to load|
unknown model info|GET|/models/nope|-|-|404|unknown model 'nope'|
failed model info|GET|/models/badconfig|-|-|503|model 'badconfig' is not loaded|
v2 unknown version|GET|/v2/models/iris/versions/9|-|-|404|model 'iris' has no version '9'|
v2 infer unknown version|POST|/v2/models/iris/versions/9/infer|application/json|{"inputs":[]}|404|model 'iris' has no version '9'|
v2 unknown model|GET|/v2/models/nope|-|-|404|unknown model 'nope'|
wrong method GET /predict|GET|/predict|-|-|405|method GET is not allowed on /predict|
wrong method DELETE /models/iris|DELETE|/models/iris|-|-|405|method DELETE is not allowed|
wrong method POST /metrics|POST|/metrics|application/json|{}|405|method POST is not allowed|
wrong content type|POST|/predict|text/plain|$SETOSA|415|Content-Type must be application/json|
form content type|POST|/predict|application/x-www-form-urlencoded|$SETOSA|415|Content-Type must be application/json|
unknown path|GET|/nope|-|-|404|no route for GET /nope|
unknown nested path|GET|/models/iris/extra/segment|-|-|404|no route|
EOF

# Clients that do not send "Expect: 100-continue" (most libraries) upload the whole body while
# the 413 is already on its way: each of them must still read the 413, not a reset connection.
n_reset=0
reset_how=""
for i in $(seq 10); do
    req POST /predict -H 'Content-Type: application/json' -H 'Expect:' --data-binary @big.json
    if [ "$STATUS" != 413 ]; then
        n_reset=$((n_reset + 1))
        reset_how="status $STATUS, curl: $(head -c 200 curl.err)"
    fi
done
if [ "$n_reset" = 0 ]; then ok; else
    bad "10 MB body without Expect: $n_reset of 10 uploads got no 413 ($reset_how)"
fi

# A chunked body that outgrows the limit: libmicrohttpd cannot queue a reply while it delivers
# upload data, so http.c closes the connection (counted and logged as 413). Either a 413 or a
# closed connection is fine; a 2xx is not, and the server must keep serving.
req POST /predict -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary @big.json
case $STATUS in
413 | 000) ok ;;
*) bad "10 MB chunked body: status $STATUS, expected 413 or a closed connection" ;;
esac

req GET /predict
if header Allow | grep -q POST; then ok; else bad "405 lacks 'Allow: POST': $(cat resp.hdr)"; fi

# after all of it, the server still answers correctly
post_json /predict "$VIRGINICA"
expect_prediction "after the bad input" virginica

# the access log: one JSON line per request
# expect_access_log NAME: every line is JSON and there are REQ_COUNT of them
expect_access_log() {
    local lines i
    for i in $(seq 40); do
        lines=$(grep -c . access.log)
        [ "$lines" -ge "$REQ_COUNT" ] && break
        sleep 0.05
    done
    expect_eq "$1: access log lines = requests sent" "$lines" "$REQ_COUNT"
    if jq -c . access.log >/dev/null 2>jq.err; then ok; else
        bad "$1: access log has lines that are not JSON: $(head -c 300 jq.err)"
    fi
}
expect_access_log "after the bad input"

# ---- 1,000 slow clients ---------------------------------------------------------------------
scrape before_slow.prom
FDS_BEFORE=$(metric before_slow.prom process_open_fds)
rm -f slow.ready
"$SLOW_CLIENTS" 127.0.0.1 "$SERVER_PORT" 1000 8 slow.ready >slow.json 2>slow.err &
SLOW_PID=$!
for i in $(seq 300); do
    [ -f slow.ready ] && break
    sleep 0.1
done
if [ -f slow.ready ]; then ok; else bad "slow clients: not connected after 30 s"; fi
sleep 1
# While they hold their connections, normal requests are answered promptly.
for i in 1 2 3 4 5; do
    t0=$(date +%s.%N)
    post_json /predict "$SETOSA"
    t1=$(date +%s.%N)
    expect_prediction "during slow clients ($i)" setosa
    if awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 2) }'; then ok; else
        bad "during slow clients: /predict took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s"
    fi
    req GET /health
    expect_code 200 "GET /health during slow clients ($i)"
done
scrape during_slow.prom
FDS_DURING=$(metric during_slow.prom process_open_fds)
ACCEPTED=$((${FDS_DURING%.*} - ${FDS_BEFORE%.*}))
echo "slow clients: the server holds $ACCEPTED more descriptors ($FDS_BEFORE -> $FDS_DURING)"
if [ "$ACCEPTED" -ge 1000 ]; then ok; else
    bad "slow clients: server accepted only $ACCEPTED of 1000 connections"
fi
wait "$SLOW_PID"
slow_rc=$?
echo "slow clients: $(cat slow.json)"
expect_eq "slow clients tool exit" "$slow_rc" 0
if jq -e '.connected == 1000' slow.json >/dev/null 2>&1; then ok; else
    bad "slow clients: $(cat slow.json) $(cat slow.err)"
fi
# the server lets go of the closed connections
for i in $(seq 100); do
    scrape after_slow.prom
    FDS_AFTER=$(metric after_slow.prom process_open_fds)
    [ "${FDS_AFTER%.*}" -le $((${FDS_BEFORE%.*} + 5)) ] && break
    sleep 0.1
done
if [ "${FDS_AFTER%.*}" -le $((${FDS_BEFORE%.*} + 5)) ]; then ok; else
    bad "slow clients: server still holds $FDS_AFTER descriptors (before: $FDS_BEFORE)"
fi
post_json /predict "$VIRGINICA"
expect_prediction "after slow clients" virginica
expect_access_log "after slow clients"

# ---- the final scrape: counters agree with the access log; promtool accepts it --------------
scrape final.prom
log_ok=$(jq -c 'select(.path == "/predict" and .status == 200)' access.log | grep -c .)
expect_eq "final: POST /predict 200 count = access log" \
    "$(metric final.prom vigil_http_requests_total 'method="POST"' 'route="/predict"' 'code="200"')" \
    "$log_ok"
command -v "$PROMTOOL" >/dev/null 2>&1 || bad "promtool '$PROMTOOL' not found (scripts/install-deps.sh)"
if complaints=$("$PROMTOOL" check metrics <final.prom 2>&1) && [ -z "$complaints" ]; then ok; else
    bad "promtool check metrics on a live scrape: $complaints"
fi
while read -r f; do
    if grep -q "^${f}[{_ ]" final.prom; then ok; else bad "family $f has no series after traffic"; fi
done < <(awk '$1 == "#" && $2 == "TYPE" { print $3 }' final.prom)

# ---- graceful shutdown under load -----------------------------------------------------------
# shutdown_under_load NAME CONNECTIONS: the current server gets keep-alive /predict traffic on
# CONNECTIONS connections, then SIGTERM. It must exit 0 within its 10 s grace, every response
# the hammer saw must be whole, and the access log must hold exactly the answers the hammer got:
# a request the server answered (and logged) but whose answer never reached the client was
# accepted and lost.
shutdown_under_load() {
    local name=$1 connections=$2 access=$3 log_before i hammer_rc log_200 log_by_status
    log_before=$(grep -c . "$access")
    printf '%s' "$SETOSA" >hammer_body.json
    rm -f "$name.hammer.ready"
    "$HAMMER" 127.0.0.1 "$SERVER_PORT" /predict hammer_body.json setosa "$connections" 60 \
        "$name.hammer.ready" >"$name.hammer.json" 2>"$name.hammer.err" &
    local hammer_pid=$!
    for i in $(seq 300); do
        [ -f "$name.hammer.ready" ] && break
        sleep 0.1
    done
    if [ -f "$name.hammer.ready" ]; then ok; else bad "$name: fewer than 100 answers in 30 s"; fi
    sleep 0.3
    server_stop 20
    echo "$name: SIGTERM under load: exit $SERVER_EXIT after $SERVER_STOP_SECONDS s;" \
        "$(grep -o 'SIGTERM received.*' "$SERVER_LOG")"
    expect_eq "$name: exit status after SIGTERM under load" "$SERVER_EXIT" 0
    if awk -v s="$SERVER_STOP_SECONDS" 'BEGIN { exit !(s <= 12) }'; then ok; else
        bad "$name: exit took $SERVER_STOP_SECONDS s (grace 10 s)"
    fi
    wait "$hammer_pid"
    hammer_rc=$?
    echo "$name: hammer: $(cat "$name.hammer.json")"
    expect_eq "$name: hammer saw no truncated, invalid or timed-out response" "$hammer_rc" 0
    grep -v '^unanswered ' "$name.hammer.err" | sed 's/^/    hammer: /' | head -5 >&2
    # requests the hammer sent and got no byte back for: the server must not have served them
    local lost
    lost=$(sed -n 's/^unanswered //p' "$name.hammer.err" | jq -R . | jq -s -c . |
        jq -c --slurpfile log "$access" '(map({(.): true}) | add // {}) as $ids
            | $log[] | select($ids[.request_id]) | {request_id, status, duration_ms, time}' |
        tr '\n' ' ')
    if [ -z "$lost" ]; then ok; else
        bad "$name: the access log has answers for requests whose client got none: $lost"
    fi
    if grep -q 'SIGTERM received' "$SERVER_LOG"; then ok; else
        bad "$name: no 'SIGTERM received' line in the server log"
    fi
    tail -n +"$((log_before + 1))" "$access" >"$name.hammer_access.log"
    log_200=$(jq -c 'select(.status == 200)' "$name.hammer_access.log" | grep -c .)
    expect_eq "$name: 200s in the access log = 200s the hammer received" "$log_200" \
        "$(jq '.ok' "$name.hammer.json")"
    log_by_status=$(jq -s -c 'group_by(.status)
        | map({key: (.[0].status | tostring), value: length}) | from_entries' \
        "$name.hammer_access.log")
    expect_eq "$name: answers by status, access log = hammer" "$log_by_status" \
        "$(jq -c '.statuses' "$name.hammer.json")"
}
shutdown_under_load main 8 access.log
check_sanitizers "$SERVER_LOG" "main server"
# A request that arrives on a kept-alive connection just as the last one in progress ends is the
# narrow case; it comes up most often with few connections (a third to a half of rounds with 2 to
# 4 against an affected server, measured), so six more rounds.
for round in 2:2 3:3 4:4 5:2 6:3 7:4; do
    if server_start "drain${round%:*}" --host 127.0.0.1 --port 0 --models repo --threads 2 \
        --access-log "drain${round%:*}.access.log" --shutdown-grace 10; then
        shutdown_under_load "drain${round%:*}" "${round#*:}" "drain${round%:*}.access.log"
    else
        bad "drain${round%:*}: server did not start"
    fi
done

# A request in progress when SIGTERM arrives (an upload taking about 2 s) is finished and
# answered; the server exits only after it.
{
    printf '{"instances":['
    for i in $(seq 2399); do printf '%s,' "$SETOSA"; done
    printf '%s]}' "$SETOSA"
} >rows2400.json
if server_start slow_upload --host 127.0.0.1 --port 0 --models repo --threads 2 \
    --shutdown-grace 10; then
    curl -sS -m 20 -o slow_upload.body -w '%{http_code}' -H 'Content-Type: application/json' \
        --limit-rate 100K --data-binary @rows2400.json "$SERVER_URL/predict" \
        >slow_upload.status 2>slow_upload.err &
    curl_pid=$!
    sleep 0.5
    server_stop 20
    wait "$curl_pid"
    expect_eq "upload in progress at SIGTERM: status" "$(cat slow_upload.status)" 200
    if jq -e '.predictions | length == 2400' slow_upload.body >/dev/null 2>&1; then ok; else
        bad "upload in progress at SIGTERM: $(head -c 200 slow_upload.body) $(cat slow_upload.err)"
    fi
    expect_eq "upload in progress at SIGTERM: exit status" "$SERVER_EXIT" 0
    if awk -v s="$SERVER_STOP_SECONDS" 'BEGIN { exit !(s >= 0.8) }'; then ok; else
        bad "upload in progress at SIGTERM: the server exited after $SERVER_STOP_SECONDS s, before the upload could end"
    fi
fi

for f in ./*.log; do
    case $f in ./*access.log | ./main.log) continue ;; esac
    check_sanitizers "$f" "$f"
done
check_sanitizers err.txt "last command"

finish server
