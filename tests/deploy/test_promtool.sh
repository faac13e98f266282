#!/usr/bin/env bash
# deploy_promtool (tests/cmake/deploy.cmake): the Prometheus and Alertmanager files of deploy/ with
# the tools that run them (docs/deploy.md, "How it is validated").
#   test_promtool.sh PROMTOOL AMTOOL ALERTMANAGER WORK_DIR SOURCE_DIR
# 1. promtool check config prometheus.yml (which also checks the rule files it loads),
#    promtool check rules rules/*.yml, promtool test rules tests/*.yml;
# 2. amtool check-config alertmanager.yml, and amtool config routes test for each severity;
# 3. alertmanager.yml in a real Alertmanager on loopback: a firing VigilDown suppresses the other
#    alerts of its job and only those.
# A missing tool fails the test rather than skipping it (scripts/install-deps.sh installs them).
set -uo pipefail
PROMTOOL=$1 AMTOOL=$2 ALERTMANAGER=$3 WORK=$4
SRC=$(cd "$5" && pwd) || exit 1

failed=0 passed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
run() { # run WHAT COMMAND...: the command's output is shown only when it fails
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok; else bad "$what"; printf '%s\n' "$out" | sed 's/^/    /'; fi
}
for tool in "$PROMTOOL" "$AMTOOL" "$ALERTMANAGER"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL $tool not found: install the Debian packages prometheus and prometheus-alertmanager" \
         "(scripts/install-deps.sh does)"
    exit 1
  fi
done

cd "$SRC/deploy/prometheus" || exit 1
run "promtool check config deploy/prometheus/prometheus.yml" "$PROMTOOL" check config prometheus.yml
run "promtool check rules deploy/prometheus/rules/*.yml" "$PROMTOOL" check rules rules/*.yml
for t in tests/*.yml; do
  run "promtool test rules deploy/prometheus/$t" "$PROMTOOL" test rules "$t"
done

cd "$SRC/deploy/alertmanager" || exit 1
run "amtool check-config deploy/alertmanager/alertmanager.yml" "$AMTOOL" check-config alertmanager.yml
route() { # route RECEIVER LABEL=VALUE...
  local want=$1
  shift
  run "alertmanager.yml routes {$*} to $want" "$AMTOOL" config routes test \
      --config.file=alertmanager.yml --verify.receivers="$want" "$@"
}
route page alertname=VigilDown job=vigil severity=page
route page alertname=VigilErrorBudgetBurn job=vigil severity=page window=1h/5m
route ticket alertname=VigilErrorBudgetBurn job=vigil severity=ticket window=3d/6h
route ticket alertname=VigilHighLatencyP95 job=vigil severity=warning route=/predict
route page alertname=VigilFeatureDrift job=vigil severity=critical model=iris feature=petal_length
route ticket alertname=VigilFeatureDrift job=vigil severity=warning model=iris feature=petal_length
route ticket alertname=Unknown job=vigil severity=info

# 3. The inhibition, in Alertmanager itself: VigilDown for job vigil, a latency alert for job vigil
# (held back) and a load failure for job other (not).
rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$ALERTMANAGER" --config.file="$SRC/deploy/alertmanager/alertmanager.yml" \
    --storage.path="$WORK/data" --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
    >"$WORK/alertmanager.log" 2>&1 &
am_pid=$!
trap 'kill $am_pid 2>/dev/null; wait $am_pid 2>/dev/null' EXIT
for _ in $(seq 50); do
  curl -fs "$url/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -fs "$url/-/ready" >/dev/null 2>&1; then
  bad "Alertmanager did not start on $url"
  sed 's/^/    /' "$WORK/alertmanager.log"
else
  ok
  "$AMTOOL" --alertmanager.url="$url" alert add VigilDown severity=page job=vigil instance=vigil:8000 &&
  "$AMTOOL" --alertmanager.url="$url" alert add VigilHighLatencyP95 severity=warning job=vigil route=/predict &&
  "$AMTOOL" --alertmanager.url="$url" alert add VigilModelLoadFailed severity=warning job=other model=m ||
    bad "amtool alert add"
  state() { # state ALERTNAME: active or suppressed
    curl -fs "$url/api/v2/alerts?filter=alertname%3D%22$1%22" | jq -r '.[0].status.state'
  }
  # The inhibitor learns of VigilDown asynchronously: give it up to 5 s.
  for _ in $(seq 50); do [ "$(state VigilHighLatencyP95)" = suppressed ] && break; sleep 0.1; done
  [ "$(state VigilDown)" = active ] && ok || bad "VigilDown is not active: $(state VigilDown)"
  [ "$(state VigilHighLatencyP95)" = suppressed ] && ok ||
    bad "VigilHighLatencyP95 (same job as VigilDown) is not suppressed: $(state VigilHighLatencyP95)"
  [ "$(state VigilModelLoadFailed)" = active ] && ok ||
    bad "VigilModelLoadFailed (another job) is not active: $(state VigilModelLoadFailed)"
fi

echo "deploy promtool: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
