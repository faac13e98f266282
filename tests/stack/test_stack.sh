#!/usr/bin/env bash
# The monitoring stack, verified with its real parts (docs/monitoring.md, "How it is verified").
#
#   test_stack.sh VIGIL PROMETHEUS ALERTMANAGER WORK_DIR SOURCE_DIR [RATE]
#
# Starts on loopback:
#   - `vigil serve` on a test repository (iris, plus "broken", a model that fails to load);
#   - the example webhook receiver (deploy/alertmanager/webhook-receiver.py), which prints one
#     JSON line per alert it gets;
#   - Alertmanager with deploy/alertmanager/alertmanager.yml, only the webhook URL rewritten;
#   - Prometheus with deploy/prometheus/prometheus.yml, only the vigil and alertmanager targets
#     rewritten, and the project's own rules/*.yml, plus one test-only file written by
#     tests/stack/short_windows.py: a copy of those rules with windows of seconds instead of
#     hours, its alerts labelled rules="short-windows" (the shipped files are not edited).
# Then, with `vigil load` driving traffic at RATE requests a second (default 200):
#   1. normal traffic: the target is up; every rule evaluates without error; every panel and
#      variable of every dashboard returns series (tests/stack/dashboards.py eval); no error
#      budget alert fires; every feature's PSI is under 0.1;
#   2. the errors scenario, with requests to the model that failed to load among its invalid
#      ones (503, a server-side failure the availability objective counts): the short-window
#      VigilErrorBudgetBurn page alert fires, reaches Alertmanager and is delivered to the
#      webhook by the route for pages; every recording rule now has series; VigilModelLoadFailed
#      fires for "broken" and not for "iris";
#   3. two generators at once, drift (sepal_length and sepal_width shifted) and labelled rows
#      with feedback for every answer, 20 % of it with a wrong label: the shifted features' PSI
#      goes over 0.25 and the others stay under 0.1, VigilFeatureDrift (critical) fires, live
#      accuracy lands within 3 points of the expected value and VigilLiveAccuracyLow fires;
#   4. vigil stopped: VigilDown fires.
set -u
VIGIL=$1
PROMETHEUS=$2
ALERTMANAGER=$3
WORK=$4
SRC=$5
RATE=${6:-200}
PY=/usr/bin/python3

# shellcheck source=tests/lib.sh
source "$SRC/tests/lib.sh"
# shellcheck source=tests/server/common.sh
source "$SRC/tests/server/common.sh"

for tool in "$PROMETHEUS" "$ALERTMANAGER" amtool curl jq "$PY"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "stack test: $tool is not installed (scripts/install-deps.sh installs it)" >&2
        exit 1
    fi
done

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1

OTHER_PIDS=""
stop_everything() {
    local p
    for p in $OTHER_PIDS; do kill "$p" 2>/dev/null; done
    stop_all_servers
    for p in $OTHER_PIDS; do wait "$p" 2>/dev/null; done
}
trap stop_everything EXIT

# wait_until SECONDS WHAT CMD...: runs CMD every second until it succeeds; false after SECONDS.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@"; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            echo "stack test: waited ${limit}s for $what" >&2
            return 1
        fi
        sleep 1
    done
    echo "stack test: $what after $((SECONDS - start))s"
}

# prom_query EXPR: instant query; the result array in query.json, its length on stdout.
prom_query() {
    curl -s --max-time 10 "$PROM_URL/api/v1/query" --data-urlencode "query=$1" >query.json &&
        jq -e '.status == "success"' query.json >/dev/null && jq '.data.result | length' query.json
}
# has_series EXPR: the query returns at least one series.
has_series() { [ "$(prom_query "$1")" -gt 0 ] 2>/dev/null; }

# ---- vigil ----------------------------------------------------------------------------------
make_test_repo repo "$SRC"
# A one-minute drift window, so drift shows within the test's minutes; a live-accuracy window
# larger than the feedback the test sends, so the gauge covers all of it.
server_start vigil --host 127.0.0.1 --port 0 --models repo --drift-window 60 \
    --live-accuracy-window 20000 || exit 1
VIGIL_PORT=$SERVER_PORT

# ---- webhook receiver and Alertmanager -------------------------------------------------------
WEBHOOK_PORT=$(free_port)
PORT=$WEBHOOK_PORT "$PY" "$SRC/deploy/alertmanager/webhook-receiver.py" >webhook.jsonl 2>webhook.log &
OTHER_PIDS="$OTHER_PIDS $!"

mkdir -p am
AM_SRC=$SRC/deploy/alertmanager/alertmanager.yml
sed "s#http://webhook:5001#http://127.0.0.1:$WEBHOOK_PORT#g" "$AM_SRC" >am/alertmanager.yml
# Only the webhook address may differ from the shipped file.
if diff "$AM_SRC" am/alertmanager.yml | grep '^>' | grep -qv "127.0.0.1:$WEBHOOK_PORT"; then
    bad "alertmanager.yml: the rewrite changed more than the webhook address"
elif cmp -s "$AM_SRC" am/alertmanager.yml; then
    bad "alertmanager.yml: no webhook URL http://webhook:5001 to rewrite"
else ok; fi
AM_PORT=$(free_port)
"$ALERTMANAGER" --config.file=am/alertmanager.yml --storage.path=am/data \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >am/alertmanager.log 2>&1 &
OTHER_PIDS="$OTHER_PIDS $!"
AM_URL=http://127.0.0.1:$AM_PORT

# ---- Prometheus -----------------------------------------------------------------------------
cp -r "$SRC/deploy/prometheus" prom
rm -rf prom/tests
sed -i "s#'vigil:8000'#'127.0.0.1:$VIGIL_PORT'#; s#'alertmanager:9093'#'127.0.0.1:$AM_PORT'#" \
    prom/prometheus.yml
changed=$(diff "$SRC/deploy/prometheus/prometheus.yml" prom/prometheus.yml | grep -c '^>')
if [ "$changed" -eq 2 ]; then ok; else
    bad "prometheus.yml: expected exactly the two target lines rewritten, got $changed"
fi
"$PY" "$SRC/tests/stack/short_windows.py" prom/rules prom/rules/zz-test-short-windows.yml ||
    bad "short_windows.py failed"
PROM_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
"$PROMETHEUS" --config.file=prom/prometheus.yml --storage.tsdb.path=prom/data \
    --web.listen-address="127.0.0.1:$PROM_PORT" >prom/prometheus.log 2>&1 &
OTHER_PIDS="$OTHER_PIDS $!"

ready() { curl -sf --max-time 2 "$1" >/dev/null; }
wait_until 60 "Alertmanager ready" ready "$AM_URL/-/ready" || { tail -20 am/alertmanager.log; exit 1; }
wait_until 60 "Prometheus ready" ready "$PROM_URL/-/ready" || { tail -20 prom/prometheus.log; exit 1; }

target_up() {
    curl -s --max-time 5 "$PROM_URL/api/v1/targets" >targets.json &&
        jq -e --arg t "127.0.0.1:$VIGIL_PORT" '[.data.activeTargets[] |
            select(.labels.job == "vigil" and .labels.instance == $t and .health == "up")] |
            length == 1' targets.json >/dev/null
}
if wait_until 60 "the vigil target up" target_up; then ok; else
    bad "the vigil target is not up: $(jq -c '.data.activeTargets' targets.json)"
fi
am_known() {
    curl -s --max-time 5 "$PROM_URL/api/v1/alertmanagers" |
        jq -e --arg u "$AM_URL/api/v2/alerts" '[.data.activeAlertmanagers[].url] | index($u)' \
            >/dev/null
}
if wait_until 30 "Prometheus sending to Alertmanager" am_known; then ok; else
    bad "Prometheus does not list $AM_URL as its Alertmanager"
fi

# Every metric family vigil exports is documented in docs/monitoring.md's table.
scrape scrape.txt
undocumented=""
for family in $(awk '$1 == "#" && $2 == "TYPE" { print $3 }' scrape.txt); do
    grep -q "^| \`$family\`" "$SRC/docs/monitoring.md" || undocumented="$undocumented $family"
done
if [ -z "$undocumented" ] && [ "$(grep -c '^# TYPE' scrape.txt)" -gt 15 ]; then ok; else
    bad "metric families missing from docs/monitoring.md:$undocumented"
fi

# ---- 1. normal traffic ----------------------------------------------------------------------
load() { # load NAME ARGS...: vigil load against the server, JSON summary in NAME.json
    local name=$1
    shift
    "$VIGIL" load --url "$SERVER_URL" --model iris --rate "$RATE" --no-progress --json "$@" \
        >"$name.json" 2>"$name.err"
}
if load normal --scenario normal --duration 35s; then ok; else
    bad "vigil load normal: exit $?: $(head -c 400 normal.err)"
fi
jq -e '.total.failed == 0 and .total.ok > 0' normal.json >/dev/null && ok ||
    bad "normal: failures or no answers: $(jq -c .total normal.json)"

# Every rule (shipped and short-window copy) evaluates without error.
curl -s "$PROM_URL/api/v1/rules" >rules.json
n_rules=$(jq '[.data.groups[].rules[]] | length' rules.json)
n_shipped=$(cat "$SRC"/deploy/prometheus/rules/*.yml | grep -cE '^\s*- (record|alert):')
if [ "$n_rules" -eq $((2 * n_shipped)) ]; then ok; else
    bad "Prometheus loaded $n_rules rules, expected $((2 * n_shipped)) (shipped + short-window copy)"
fi
bad_rules=$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.lastError)"' \
    rules.json)
if [ -z "$bad_rules" ] && [ "$(jq '[.data.groups[].rules[] | select(.health == "ok")] | length' \
    rules.json)" -eq "$n_rules" ]; then ok; else bad "rules with errors: $bad_rules"; fi

# Every dashboard panel and variable against the live Prometheus.
if "$PY" "$SRC/tests/stack/dashboards.py" eval "$SRC" "$PROM_URL" job=vigil 'instance=.*' \
    model=iris version=1 __rate_interval=20s __interval=5s __range=5m >dashboards.txt; then ok; else
    bad "dashboard queries: $(grep FAIL dashboards.txt | head -10)"
fi
grep -c '^ok' dashboards.txt | sed 's/^/stack test: dashboard checks passed: /'

# Feature drift under normal traffic: every feature's PSI under 0.1.
psi_json() { # psi_json FILE: {feature: psi} of iris, from Prometheus
    curl -s --max-time 10 "$PROM_URL/api/v1/query" --data-urlencode \
        'query=vigil_feature_psi{job="vigil", model="iris"}' |
        jq '[.data.result[] | {(.metric.feature): (.value[1] | tonumber)}] | add' >"$1"
}
psi_json psi_normal.json
if jq -e 'length == 4 and all(.[]; . < 0.1)' psi_normal.json >/dev/null; then ok; else
    bad "normal traffic: every feature's PSI should be under 0.1: $(jq -c . psi_normal.json)"
fi

burn_firing='ALERTS{alertname="VigilErrorBudgetBurn", rules="short-windows", alertstate="firing"}'
if has_series "$burn_firing"; then
    bad "VigilErrorBudgetBurn fires on normal traffic"
else ok; fi

# ---- 2. errors ------------------------------------------------------------------------------
load errors --scenario errors --error-ratio 0.3 --unavailable-model broken --duration 90s &
LOAD_PID=$!
page='ALERTS{alertname="VigilErrorBudgetBurn", rules="short-windows", severity="page", alertstate="firing"}'
if wait_until 90 "VigilErrorBudgetBurn (page) firing" has_series "$page"; then ok; else
    bad "VigilErrorBudgetBurn did not fire under the errors scenario: $(prom_query \
        'job:vigil_slo_errors_short:ratio_rate5m') series of the 5xx ratio"
fi
delivered() {
    jq -e -s 'map(select(.status == "firing" and .alertname == "VigilErrorBudgetBurn" and
        .severity == "page")) | length > 0' webhook.jsonl >/dev/null 2>&1
}
if wait_until 90 "the page delivered to the webhook" delivered; then ok; else
    bad "no VigilErrorBudgetBurn page reached the webhook ($(wc -l <webhook.jsonl) alerts)"
fi
jq -r -s 'map(select(.alertname == "VigilErrorBudgetBurn" and .severity == "page"))[0]
    | "\(.receiver) \(.path)"' webhook.jsonl >page.txt 2>/dev/null
expect_eq "the page's receiver and webhook path" "$(cat page.txt)" \
    "$(amtool config routes test --config.file="$AM_SRC" alertname=VigilErrorBudgetBurn \
        severity=page job=vigil 2>/dev/null) /alerts/page"

loadfail() { # loadfail MODEL: the short-window VigilModelLoadFailed fires for MODEL
    has_series "ALERTS{alertname=\"VigilModelLoadFailed\", rules=\"short-windows\", alertstate=\"firing\", model=\"$1\"}"
}
if wait_until 60 "VigilModelLoadFailed firing" loadfail broken; then ok; else
    bad "VigilModelLoadFailed did not fire for the broken model"
fi
if loadfail iris; then bad "VigilModelLoadFailed fires for iris"; else ok; fi

wait "$LOAD_PID"
rc=$?
if [ "$rc" -eq 0 ]; then ok; else bad "vigil load errors: exit $rc: $(head -c 400 errors.err)"; fi
jq -e '.total.failed == 0 and .total.expected_errors > 0' errors.json >/dev/null && ok ||
    bad "errors: $(jq -c .total errors.json)"

# With 5xx answered, every shipped recording rule has series.
missing=""
for record in $(grep -hoE 'record: [a-z_:0-9]+' "$SRC"/deploy/prometheus/rules/*.yml | cut -d' ' -f2); do
    has_series "$record" || missing="$missing $record"
done
if [ -z "$missing" ]; then ok; else bad "recording rules without series:$missing"; fi

# ---- 3. drift and feedback ------------------------------------------------------------------
# Two generators at once: drift shifts sepal_length and sepal_width by 3 standard deviations;
# the other sends the labelled rows of data/iris.csv and feedback for every answer, 20 % of it
# with a wrong label.
load drift --scenario drift --drift-features sepal_length,sepal_width --duration 50s &
DRIFT_PID=$!
load feedback --scenario normal --data "$SRC/data/iris.csv" --target species --feedback 1 \
    --label-noise 0.2 --duration 50s &
FEEDBACK_PID=$!
drift_firing() {
    has_series 'ALERTS{alertname="VigilFeatureDrift", rules="short-windows", severity="critical", alertstate="firing", model="iris", feature="sepal_length"}'
}
if wait_until 90 "VigilFeatureDrift (critical) firing" drift_firing; then ok; else
    bad "VigilFeatureDrift did not fire under the drift scenario"
fi
accuracy_firing() {
    has_series 'ALERTS{alertname="VigilLiveAccuracyLow", rules="short-windows", alertstate="firing", model="iris"}'
}
if wait_until 90 "VigilLiveAccuracyLow firing" accuracy_firing; then ok; else
    bad "VigilLiveAccuracyLow did not fire with 20 % label noise"
fi
psi_json psi_drift.json
if jq -e '.sepal_length > 0.25 and .sepal_width > 0.25 and .petal_length < 0.1 and
    .petal_width < 0.1' psi_drift.json >/dev/null; then ok; else
    bad "drift: shifted features should be over 0.25 and the others under 0.1: $(jq -c . psi_drift.json)"
fi
wait "$DRIFT_PID" || bad "vigil load drift: exit $?: $(head -c 400 drift.err)"
wait "$FEEDBACK_PID" || bad "vigil load feedback: exit $?: $(head -c 400 feedback.err)"
# Live accuracy against what the generator expects: the model's accuracy on the rows it sent,
# with 20 % of the labels replaced by another class.
prom_query 'vigil_live_accuracy{job="vigil", model="iris"}' >/dev/null
live=$(jq -r '.data.result[0].value[1]' query.json)
# Expected: a right prediction stays right unless its label is replaced (1 - p); a wrong one
# becomes right when the replacement, one of the K - 1 other classes (iris: K = 3), is the
# predicted class.
expected=$(jq '.model_accuracy.accuracy as $a | .feedback.label_noise as $p |
    $a * (1 - $p) + (1 - $a) * $p / 2' feedback.json)
observed=$(jq '.feedback.expected_live_accuracy' feedback.json)
echo "stack test: live accuracy $live; expected $expected; the generator's own count $observed"
if awk -v l="$live" -v e="$expected" 'BEGIN { d = l - e; exit !(d < 0.03 && d > -0.03) }'; then
    ok
else
    bad "live accuracy $live is not within 3 points of the expected $expected"
fi
# Now that the generator is done, the server's own gauge (scraped directly: Prometheus's last
# sample may predate the last feedbacks) covers every feedback sent, its window being larger:
# it is exactly the generator's count.
scrape live.txt
served=$(metric live.txt vigil_live_accuracy 'model="iris"')
if awk -v l="$served" -v o="$observed" 'BEGIN { d = l - o; exit !(d < 1e-9 && d > -1e-9) }'; then
    ok
else
    bad "the server's live accuracy $served differs from the generator's count $observed"
fi

# ---- 4. vigil down --------------------------------------------------------------------------
server_stop
down='ALERTS{alertname="VigilDown", rules="short-windows", alertstate="firing"}'
if wait_until 90 "VigilDown firing" has_series "$down"; then ok; else
    bad "VigilDown did not fire after vigil stopped"
fi

grep -E 'level=(error|fatal)' prom/prometheus.log | head -5 | sed 's/^/prometheus: /'
check_sanitizers "$SERVER_LOG" vigil
finish stack
