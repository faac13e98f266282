#!/usr/bin/env bash
# The cost of model-quality monitoring on prediction throughput: two `vigil serve` on the same
# models, one with its defaults (drift monitoring on, and feedback on when this vigil has the
# option) and one with `--drift off` (and `--feedback off`), driven by wrk in alternating rounds
# in one run, so that both see the same machine. Every answer is checked as in run.sh; the
# figures are printed, never asserted. Exits non-zero only when something fails to run or an
# answer is wrong.
#
# Two estimates, because the machine is shared: the throughput ratio (on / off req/s: means,
# best rounds, and the median of the rounds' ratios, which other processes' bursts disturb least),
# and the servers' own CPU time per answered request (utime + stime from /proc, which competing
# processes hardly change): off / on of that is the throughput ratio a CPU-bound server would see.
#
# Usage: bench/http/quality_cost.sh [--build-dir DIR] [--seconds N] [--rounds N] [--rows N]
#                                   [--only drift|feedback]
#    or: bench/http/run.sh --quality-cost [BUILD_DIR] [--seconds N] [--rounds N] [--rows N]
#   --build-dir DIR  CMake build directory (default: $VG_BUILD_DIR, else build/); vigil is
#                    (re)built there first; logs go to DIR/bench-quality/
#   --seconds N      length of each wrk run (default 5)
#   --rounds N       rounds of [on, off] (default 10); the order alternates each round
#   --rows N         rows per request (default 1: the single-row POST /predict of run.sh; more
#                    sends {"instances": [...]} of N rows, where drift costs most)
#   --only WHAT      the 'on' server turns the other one off: the cost of drift alone
#                    (--only drift: on = --feedback off) or of feedback alone (on = --drift off)
# Needs wrk, curl, python3 and models/iris (`make build`).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${VG_BUILD_DIR:-$ROOT/build}
RUN_SECONDS=5
ROUNDS=10
ROWS=1
ONLY=""
WARMUP_SECONDS=2
CONNECTIONS=64
WRK_THREADS=2
EXPECTED='"prediction":"setosa"'
ROW='{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'
PY=/usr/bin/python3
CMD="bench/http/quality_cost.sh $*"
TARGET_RATIO=0.95

while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) BUILD=$2; shift 2 ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quality_cost.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$RUN_SECONDS$ROUNDS$ROWS" in
*[!0-9]*) echo "quality_cost.sh: --seconds, --rounds and --rows take whole numbers" >&2; exit 2 ;;
esac
if [ "$RUN_SECONDS" -lt 1 ] || [ "$ROUNDS" -lt 1 ] || [ "$ROWS" -lt 1 ]; then
    echo "quality_cost.sh: --seconds, --rounds and --rows must be at least 1" >&2
    exit 2
fi
for tool in wrk curl "$PY"; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "quality_cost.sh: $tool not found (scripts/install-deps.sh --bench installs wrk)" >&2
        exit 1
    }
done

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
prepare_vigil
if [ -z "${VG_BENCH_KEEP_CORETYPE:-}" ]; then
    unset OPENBLAS_CORETYPE
fi

WORK=$BUILD/bench-quality
rm -rf "$WORK"
mkdir -p "$WORK"
if [ "$ROWS" = 1 ]; then
    printf '%s' "$ROW" >"$WORK/body.json"
else
    "$PY" -c 'import sys; print("{\"instances\":[" + ",".join([sys.argv[1]] * int(sys.argv[2])) + "]}", end="")' \
        "$ROW" "$ROWS" >"$WORK/body.json"
fi

ON_PID=""
OFF_PID=""
WRK_PID=""
cleanup() {
    stop_pid "$WRK_PID"
    stop_pid "$ON_PID"
    stop_pid "$OFF_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The options that turn monitoring off: --drift off, and --feedback off when vigil has it.
OFF_ARGS=(--drift off)
OFF_WHAT="--drift off"
HAS_FEEDBACK=0
if "$VIGIL" serve --help | grep -q -- '--feedback '; then
    HAS_FEEDBACK=1
    OFF_ARGS+=(--feedback off)
    OFF_WHAT="--drift off --feedback off"
fi
ON_ARGS=()
ON_WHAT="defaults: drift on$([ "$HAS_FEEDBACK" = 1 ] && echo ', feedback on')"
case $ONLY in
"") ;;
drift)
    if [ "$HAS_FEEDBACK" = 1 ]; then ON_ARGS=(--feedback off); fi
    ON_WHAT="drift on, feedback off" ;;
feedback)
    [ "$HAS_FEEDBACK" = 1 ] || die "this vigil has no --feedback option"
    ON_ARGS=(--drift off)
    ON_WHAT="drift off, feedback on" ;;
*) echo "quality_cost.sh: --only takes drift or feedback" >&2; exit 2 ;;
esac

# start NAME ARGS...: a server on a free port; sets <NAME>_PID at once, and START_URL
start() {
    local name=$1 log=$WORK/$1.stderr
    shift
    "$VIGIL" serve --host 127.0.0.1 --port 0 --models "$MODELS" "$@" >"$WORK/$name.stdout" \
        2>"$log" &
    local pid=$!
    printf -v "${name^^}_PID" '%s' "$pid"
    for _ in $(seq 300); do
        grep -q 'serving http://' "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q 'serving http://' "$log" || { tail -n 20 "$log" >&2; die "vigil ($name) did not start"; }
    local port
    port=$(grep -o 'serving http://[^ ]*' "$log" | head -n 1 | sed -n 's|.*:\([0-9][0-9]*\)/*$|\1|p')
    START_URL=http://127.0.0.1:$port
}
start on "${ON_ARGS[@]}"
URL_ON=$START_URL
start off "${OFF_ARGS[@]}"
URL_OFF=$START_URL
if [ "$ONLY" != feedback ]; then
    grep -q 'drift monitored' "$WORK/on.stderr" || die "drift is not on in the 'on' server"
fi
grep -q 'drift monitoring is off' "$WORK/off.stderr" || die "drift is not off in the 'off' server"

VERIFY_FAILED=0
# CPU time (user + system) of a process so far, in clock ticks.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
TICKS_PER_S=$(getconf CLK_TCK)

# run_wrk LABEL URL PID SECONDS: one wrk run against the server PID; its summary line, with the
# server's CPU microseconds per answer (cpu_us), goes to $WORK/results.txt
run_wrk() {
    local label=$1 url=$2 pid=$3 secs=$4 log=$WORK/wrk-$1.log t0
    kill -0 "$ON_PID" 2>/dev/null || die "vigil (on) has exited (log: $WORK/on.stderr)"
    kill -0 "$OFF_PID" 2>/dev/null || die "vigil (off) has exited (log: $WORK/off.stderr)"
    t0=$(cpu_ticks "$pid")
    wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${secs}s" --timeout 2s --latency \
        -s "$HERE/predict.lua" "$url/models/iris/predict" -- "$EXPECTED" "$WORK/body.json" \
        >"$log" 2>&1 &
    WRK_PID=$!
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    [ "$rc" = 0 ] || { cat "$log" >&2; die "wrk failed ($label)"; }
    local line n cpu_us
    line=$(grep '^vgbench ' "$log" | tail -n 1)
    [ -n "$line" ] || die "no summary from wrk ($label), see $log"
    n=$(field "$line" responses)
    cpu_us=$(awk -v a="$t0" -v b="$(cpu_ticks "$pid")" -v hz="$TICKS_PER_S" -v n="$n" \
        'BEGIN { printf "%.2f", n ? (b - a) / hz * 1e6 / n : 0 }')
    line="$line cpu_us=$cpu_us"
    echo "$label $line" >>"$WORK/results.txt"
    local bad sock
    bad=$(($(field "$line" non_200) + $(field "$line" wrong_body)))
    sock=$(($(field "$line" err_connect) + $(field "$line" err_read) + $(field "$line" err_write) +
        $(field "$line" err_timeout)))
    printf '  %-12s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %6.2f us/answer  %d answers checked: %d wrong, %d socket errors\n' \
        "$label" "$(field "$line" rps)" "$(ms "$(field "$line" p50_us)")" \
        "$(ms "$(field "$line" p99_us)")" "$cpu_us" "$n" "$bad" "$sock" >&2
    if [ "$bad" != 0 ] || [ "$sock" != 0 ] || [ "$n" = 0 ]; then
        VERIFY_FAILED=1
    fi
}
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
stat() { # stat PATTERN KEY mean|best
    awk -v pat="$1" -v key="$2" -v how="$3" '$1 ~ pat {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) {
            s += kv[2]; if (!n++ || kv[2] > m) m = kv[2] } }
    } END { if (!n) print "nan"; else printf "%.3f", how == "best" ? m : s / n }' "$WORK/results.txt"
}

echo "quality cost: $ROWS row(s) per request, $CONNECTIONS connections, $WRK_THREADS wrk threads, $ROUNDS round(s) of $RUN_SECONDS s; on = $ON_WHAT; off = $OFF_WHAT" >&2
run_wrk warmup-on "$URL_ON" "$ON_PID" "$WARMUP_SECONDS"
run_wrk warmup-off "$URL_OFF" "$OFF_PID" "$WARMUP_SECONDS"
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    if [ $((round % 2)) = 1 ]; then
        run_wrk "on-$round" "$URL_ON" "$ON_PID" "$RUN_SECONDS"
        run_wrk "off-$round" "$URL_OFF" "$OFF_PID" "$RUN_SECONDS"
    else
        run_wrk "off-$round" "$URL_OFF" "$OFF_PID" "$RUN_SECONDS"
        run_wrk "on-$round" "$URL_ON" "$ON_PID" "$RUN_SECONDS"
    fi
done

# The 'on' server did count the rows in its drift window (the default 600 s window holds them).
curl -s "$URL_ON/metrics" >"$WORK/on-metrics.txt"
WINDOW_ROWS=$(awk '/^vigil_drift_window_rows\{model="iris"/ { print $NF }' "$WORK/on-metrics.txt")
if [ "$ONLY" != feedback ] && ! [ "${WINDOW_ROWS%.*}" -gt 0 ] 2>/dev/null; then
    die "the 'on' server exports no drift window rows"
fi
curl -s "$URL_OFF/metrics" >"$WORK/off-metrics.txt"
if grep -q '^vigil_drift_window_rows' "$WORK/off-metrics.txt"; then
    die "the 'off' server exports drift series"
fi

ON_RPS=$(stat '^on-[0-9]+$' rps mean)
OFF_RPS=$(stat '^off-[0-9]+$' rps mean)
ON_BEST=$(stat '^on-[0-9]+$' rps best)
OFF_BEST=$(stat '^off-[0-9]+$' rps best)
RATIO=$(awk -v a="$ON_RPS" -v b="$OFF_RPS" 'BEGIN { printf "%.3f", a / b }')
RATIO_BEST=$(awk -v a="$ON_BEST" -v b="$OFF_BEST" 'BEGIN { printf "%.3f", a / b }')
# pairs KEY [inverse]: the rounds' on/off ratios of KEY (off/on with "inverse"), in round order
pairs() {
    awk -v key="$1" -v inv="${2:-}" '$1 ~ /^(on|off)-[0-9]+$/ {
        split($1, lr, "-"); for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) r[lr[1], lr[2]] = kv[2] }
        if (lr[2] > n) n = lr[2]
    } END { for (k = 1; k <= n; k++) printf "%s%.3f", (k > 1 ? " " : ""), inv ? r["off", k] / r["on", k] : r["on", k] / r["off", k] }' \
        "$WORK/results.txt"
}
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
PAIRS=$(pairs rps)
RATIO_MEDIAN=$(printf '%s' "$PAIRS" | median)
ON_CPU=$(stat '^on-[0-9]+$' cpu_us mean)
OFF_CPU=$(stat '^off-[0-9]+$' cpu_us mean)
CPU_RATIO=$(awk -v a="$ON_CPU" -v b="$OFF_CPU" 'BEGIN { printf "%.3f", b / a }')
CPU_PAIRS=$(pairs cpu_us inverse)
CPU_MEDIAN=$(printf '%s' "$CPU_PAIRS" | median)
verdict() { awk -v r="$1" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "meets" : "misses" }'; }

echo
echo "Quality-monitoring cost ($CMD; logs in $WORK)"
echo "Machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs shared by wrk and the servers, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo
echo "| figure | value |"
echo "|---|---:|"
echo "| on ($ON_WHAT), mean | $(printf '%.0f' "$ON_RPS") req/s |"
echo "| off ($OFF_WHAT), mean | $(printf '%.0f' "$OFF_RPS") req/s |"
echo "| on / off, means | $RATIO (target >= $TARGET_RATIO: $(verdict "$RATIO")) |"
echo "| on / off, median of the rounds' ratios | $RATIO_MEDIAN (target >= $TARGET_RATIO: $(verdict "$RATIO_MEDIAN")) |"
echo "| on / off, best round of each | $RATIO_BEST |"
echo "| on / off, round by round | ${PAIRS// /, } |"
echo "| server CPU per answer, on / off (means) | $ON_CPU / $OFF_CPU us |"
echo "| off / on CPU per answer (the throughput ratio when CPU-bound) | $CPU_RATIO (target >= $TARGET_RATIO: $(verdict "$CPU_RATIO")); median of the rounds' $CPU_MEDIAN |"
echo "| on p50 / p99 | $(ms "$(stat '^on-[0-9]+$' p50_us mean)") / $(ms "$(stat '^on-[0-9]+$' p99_us mean)") ms |"
echo "| off p50 / p99 | $(ms "$(stat '^off-[0-9]+$' p50_us mean)") / $(ms "$(stat '^off-[0-9]+$' p99_us mean)") ms |"
echo "| rows in the on server's drift window at the end | $(printf '%.0f' "${WINDOW_ROWS:-0}") |"

if [ "$VERIFY_FAILED" != 0 ]; then
    echo "quality_cost.sh: wrong answers or socket errors (see above and $WORK)" >&2
    exit 1
fi
