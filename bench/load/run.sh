#!/usr/bin/env bash
# Load generator benchmark: `vigil load` (open loop) against `vigil serve` with the built-in Iris
# model, both on this machine, at a ladder of fixed rates. For each rate: the rate the generator
# kept, p50/p99/p99.9 latency from the intended send times, how far sends fell behind the
# schedule, the generator's and the server's CPU seconds (from /proc), and a check that the
# generator's count of 200 answers equals the server's delta of
# vigil_http_requests_total{route="/models/{model}/predict",code="200"}. Every answer is checked
# by the generator; timings are only printed, never asserted. Exits non-zero when a run fails to
# start, an answer is wrong, or the counts disagree.
#
# Usage: bench/load/run.sh [BUILD_DIR | --build-dir DIR] [--seconds N] [--rates "R1 R2 ..."]
#                          [--update-docs]
#   BUILD_DIR        CMake build directory (default: $VG_BUILD_DIR, else build/ at the top of the
#                    tree); vigil is (re)built there first; logs go to BUILD_DIR/bench-load/
#   --seconds N      length of each run (default: $LOAD_BENCH_SECONDS, else 10)
#   --rates "..."    the rates, requests per second (default: $LOAD_BENCH_RATES, else
#                    "10000 20000 30000 40000")
#   --update-docs    write the figures to docs/load-generator.md
# Needs curl, and models/iris (`make build` trains it). Method: docs/load-generator.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${VG_BUILD_DIR:-$ROOT/build}
RUN_SECONDS=${LOAD_BENCH_SECONDS:-10}
RATES=${LOAD_BENCH_RATES:-10000 20000 30000 40000}
WARMUP_SECONDS=2
CONNECTIONS=64
DOCS=0
CMD="bench/load/run.sh $*"

while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) BUILD=$2; shift 2 ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --update-docs) DOCS=1; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
    esac
done
case "$RUN_SECONDS" in
'' | *[!0-9]*) echo "run.sh: --seconds takes a whole number" >&2; exit 2 ;;
esac
for r in $RATES; do
    case $r in
    *[!0-9]*) echo "run.sh: --rates takes whole numbers" >&2; exit 2 ;;
    esac
done
command -v curl >/dev/null || { echo "run.sh: curl not found" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
prepare_vigil

WORK=$BUILD/bench-load
rm -rf "$WORK"
mkdir -p "$WORK"

VIGIL_PID=""
cleanup() {
    stop_pid "$VIGIL_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
        "/proc/$1/stat"
}

# ---- vigil serve ----------------------------------------------------------------------------------

"$VIGIL" serve --host 127.0.0.1 --port 0 --models "$MODELS" \
    >"$WORK/vigil.stdout" 2>"$WORK/vigil.stderr" &
VIGIL_PID=$!
for _ in $(seq 300); do
    grep -q 'serving http://' "$WORK/vigil.stderr" && break
    kill -0 "$VIGIL_PID" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q 'serving http://' "$WORK/vigil.stderr"; then
    tail -n 20 "$WORK/vigil.stderr" >&2 || true
    die "vigil serve did not start (log: $WORK/vigil.stderr)"
fi
port=$(grep -o 'serving http://[^ ]*' "$WORK/vigil.stderr" | head -n 1 |
    sed -n 's|.*:\([0-9][0-9]*\)/*$|\1|p')
URL=http://127.0.0.1:$port

# The server's count of 200 answers on the prediction route, read from /metrics.
served_200() {
    curl -sS --max-time 5 "$URL/metrics" | awk '
        /^vigil_http_requests_total\{/ && index($0, "route=\"/models/{model}/predict\"") &&
            index($0, "code=\"200\"") { s += $NF }
        END { printf "%d", s }'
}

# run_load LABEL RATE SECONDS: one `vigil load` run, its JSON in $WORK/LABEL.json. Sets
# GEN_PROC_CPU (the generator's user + system seconds, from the shell's `time`), SERVER_CPU,
# GEN_200 and SERVER_200 (the generator's and the server's counts of 200 answers), RESULT_RC.
RESULT_RC=0
run_load() {
    local label=$1 rate=$2 secs=$3
    kill -0 "$VIGIL_PID" 2>/dev/null || die "vigil serve has exited (log: $WORK/vigil.stderr)"
    echo "vigil load: $label ($rate req/s, $secs s, $CONNECTIONS connections) ..." >&2
    local before_200 server_cpu0 rc=0 TIMEFORMAT='%U %S'
    before_200=$(served_200)
    server_cpu0=$(cpu_seconds "$VIGIL_PID")
    # In the foreground: Ctrl-C reaches vigil load, which stops, drains and reports.
    { time "$VIGIL" load --url "$URL" --model iris --rate "$rate" --duration "${secs}s" \
        --connections "$CONNECTIONS" --no-progress --json \
        >"$WORK/$label.json" 2>"$WORK/$label.stderr"; } 2>"$WORK/$label.time" || rc=$?
    SERVER_CPU=$(awk -v a="$server_cpu0" -v b="$(cpu_seconds "$VIGIL_PID")" 'BEGIN { printf "%.2f", b - a }')
    GEN_PROC_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/$label.time")
    if [ "$rc" = 1 ] || [ "$rc" = 2 ] || [ ! -s "$WORK/$label.json" ]; then
        cat "$WORK/$label.stderr" >&2
        die "vigil load failed ($label, exit $rc)"
    fi
    # The server counts an answer once its last byte is out: give the counters a moment.
    local want got
    want=$(jq '.statuses["200"] // 0' "$WORK/$label.json")
    for _ in $(seq 20); do
        got=$(($(served_200) - before_200))
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    SERVER_200=$got
    GEN_200=$want
    RESULT_RC=$rc
}

# ---- measuring ------------------------------------------------------------------------------------

first=${RATES%% *}
run_load warmup "$first" "$WARMUP_SECONDS"
MISMATCH=0
: >"$WORK/results.txt"
for rate in $RATES; do
    run_load "rate-$rate" "$rate" "$RUN_SECONDS"
    j=$WORK/rate-$rate.json
    [ "$GEN_200" = "$SERVER_200" ] || MISMATCH=1
    jq -r --arg rate "$rate" --arg gcpu "$GEN_PROC_CPU" --arg scpu "$SERVER_CPU" \
        --arg g200 "$GEN_200" --arg s200 "$SERVER_200" --arg rc "$RESULT_RC" '
        [$rate, .sent_rate, .scheduled, .sent, .unsent, .latency_ms.p50, .latency_ms.p99,
         .latency_ms.p999, .max_lag_ms, .mean_lag_ms, (.cpu.user_s + .cpu.system_s),
         .cpu.us_per_request, $gcpu, $scpu, $g200, $s200, .failed, $rc] | @tsv' "$j" \
        >>"$WORK/results.txt"
    echo "  $(tail -n 1 "$WORK/results.txt")" >&2
done

# ---- report ---------------------------------------------------------------------------------------

table() {
    echo "| asked req/s | sent req/s | unsent | p50 ms | p99 ms | p99.9 ms | lag mean / max ms | generator CPU s (µs/request) | server CPU s | 200s: generator / server |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' '{
        printf "| %d | %.0f | %d | %.3f | %.3f | %.3f | %.3f / %.2f | %.2f (%.1f) | %.2f | %d / %d %s |\n",
            $1, $2, $5, $6, $7, $8, $10, $9, $13, $12, $14, $15, $16, ($15 == $16 ? "(equal)" : "(DIFFER)")
    }' "$WORK/results.txt"
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
context() {
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPUs shared by the generator and the server, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
    echo "Runs: \`vigil load --model iris --connections $CONNECTIONS\` (one thread), $RUN_SECONDS s per rate after a $WARMUP_SECONDS s warm-up, against \`vigil serve\` (default threads: $(nproc)) with models/iris; vigil $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')."
    echo "Generator CPU: user + system seconds of the whole \`vigil load\` process (the shell's \`time\`); µs/request from its own getrusage over the run alone. Server CPU: user + system seconds of \`vigil serve\` over the run, from /proc/PID/stat."
}

echo
echo "Load generator benchmark (bench/load/run.sh; logs in $WORK)"
context
echo
table
echo
echo "Figures are for information; the benchmark fails only when a run fails, an answer is wrong or the counts differ."

if [ "$DOCS" = 1 ]; then
    write_figures "$ROOT"/docs/load-generator.md
fi

if [ "$MISMATCH" != 0 ]; then
    echo "run.sh: the generator's and the server's counts of 200 answers differ (see the table)" >&2
    exit 1
fi
