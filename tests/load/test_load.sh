#!/usr/bin/env bash
# Integration tests of `vigil load` (docs/load-generator.md): every scenario against the real
# `vigil serve` with a temporary model repository, the counts against the server's own metrics,
# the drawn bodies against the training reference, failures and exit statuses, and the
# coordinated-omission test against tests/tools/http_stall_server.
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

unset "${!VIGIL_@}"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1

case $SANITIZED in
ON | on | 1 | TRUE | true) RATE=400 CO_RATE=500 ;;
*) RATE=2000 CO_RATE=1000 ;;
esac
# shellcheck disable=SC2034  # read by expect_status (tests/lib.sh)
VG_TEST_TIMEOUT="timeout 120"

# check NAME JQ_FILTER FILE: the filter holds on the JSON in FILE
check() {
    if jq -e "$2" "$3" >/dev/null 2>&1; then ok; else
        bad "$1: $3 fails jq '$2': $(jq -c '{scheduled,sent,unsent,ok,expected_errors,unexpected_status,bad_body,connection_errors,timeouts,statuses}' "$3" 2>/dev/null || head -c 300 "$3")"
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
    method content-type expect-status max-error-rate max-p99 report progress no-progress dump json; do
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

server_stop
expect_eq "server exit status" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "server log"
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
