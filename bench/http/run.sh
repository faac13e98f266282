#!/usr/bin/env bash
# HTTP benchmark: `vigil serve` next to a static nginx that answers every request with a fixed
# JSON body as long as vigil's /predict answer, both driven by wrk over keep-alive connections in
# the same run. Also the cost of Prometheus scraping (/metrics once a second) on throughput and
# vigil's resident memory. Every answer is checked (status 200, body has the expected
# prediction); timings are only printed, never asserted. Exits non-zero only when something fails
# to run or an answer is wrong.
#
# Usage: bench/http/run.sh [BUILD_DIR | --build-dir DIR] [--seconds N] [--rounds N] [--update-docs]
#   BUILD_DIR        CMake build directory (default: $VG_BUILD_DIR, else build/ at the top of the
#                    tree); vigil is (re)built there first; logs go to BUILD_DIR/bench-http/
#   --seconds N      length of each measured wrk run (default: $HTTP_BENCH_SECONDS, else 10)
#   --rounds N       rounds of [nginx, vigil, vigil scraped] (default: $HTTP_BENCH_ROUNDS, else 2);
#                    figures are means over rounds, scraped/unscraped order alternates
#   --update-docs    write the figures to docs/benchmarks-http.md
#   --quality-cost   instead: the cost of drift (and feedback) monitoring, two vigil servers, on
#                    and off, in alternating rounds (bench/http/quality_cost.sh; also --rows N,
#                    --only drift|feedback)
# Needs wrk, nginx (/usr/sbin/nginx, Debian nginx-light), curl, python3, and models/iris
# (`make build` trains it). Method and targets: docs/benchmarks-http.md.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: '&' in ${x//a/b} stays literal

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${VG_BUILD_DIR:-$ROOT/build}
RUN_SECONDS=${HTTP_BENCH_SECONDS:-10}
ROUNDS=${HTTP_BENCH_ROUNDS:-2}
WARMUP_SECONDS=${HTTP_BENCH_WARMUP:-2}
DOCS=0
CMD="bench/http/run.sh $*"

CONNECTIONS=64
WRK_THREADS=2
# Every answer must name this class as its prediction (the class names alone appear in every
# answer, as keys of "probabilities").
EXPECTED='"prediction":"setosa"'
REQUEST='{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}'
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
PY=/usr/bin/python3
# Targets (information only).
TARGET_RATIO=0.8
TARGET_P99_MS=2
TARGET_SCRAPE_PCT=2
TARGET_RSS_MIB=20

while [ $# -gt 0 ]; do
    case $1 in
    --build-dir) BUILD=$2; shift 2 ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; ROUNDS_GIVEN=$2; shift 2 ;;
    --update-docs) DOCS=1; shift ;;
    --quality-cost) QUALITY=1; shift ;;
    --rows) QUALITY_ROWS=$2; shift 2 ;;
    --only) QUALITY_ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
    esac
done
if [ "${QUALITY:-0}" = 1 ]; then
    exec bash "$HERE/quality_cost.sh" --build-dir "$BUILD" --seconds "$RUN_SECONDS" \
        --rounds "${ROUNDS_GIVEN:-${HTTP_BENCH_ROUNDS:-10}}" --rows "${QUALITY_ROWS:-1}" \
        ${QUALITY_ONLY:+--only "$QUALITY_ONLY"}
fi
case "$RUN_SECONDS$ROUNDS$WARMUP_SECONDS" in
*[!0-9]*) echo "run.sh: --seconds, --rounds and HTTP_BENCH_WARMUP take whole numbers" >&2; exit 2 ;;
esac
if [ "$RUN_SECONDS" -lt 1 ] || [ "$ROUNDS" -lt 1 ]; then
    echo "run.sh: --seconds and --rounds must be at least 1" >&2
    exit 2
fi

for tool in wrk curl "$NGINX" "$PY"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: $tool not found (scripts/install-deps.sh --bench installs wrk and nginx-light)" >&2
        exit 1
    fi
done

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
prepare_vigil

# As in the other benchmarks: OpenBLAS picks its kernels for this CPU, as in a deployment.
if [ -z "${VG_BENCH_KEEP_CORETYPE:-}" ]; then
    unset OPENBLAS_CORETYPE
fi

WORK=$BUILD/bench-http
rm -rf "$WORK"
mkdir -p "$WORK/nginx"

# ---- processes, and cleaning them up whatever happens ---------------------------------------------

NGINX_PID=""
VIGIL_PID=""
SCRAPER_PID=""
WRK_PID=""
cleanup() {
    stop_pid "$WRK_PID"
    stop_pid "$SCRAPER_PID"
    stop_pid "$VIGIL_PID"
    stop_pid "$NGINX_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# A port nothing listens on now (the kernel's choice for an ephemeral bind).
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Resident memory of a process in KiB (VmRSS).
rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---- vigil ----------------------------------------------------------------------------------------

VIGIL_PORT=$(free_port)
"$VIGIL" serve --host 127.0.0.1 --port "$VIGIL_PORT" --models "$MODELS" \
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
ready=$(grep -o 'serving http://[^ ]*' "$WORK/vigil.stderr" | head -n 1)
port=$(printf '%s\n' "$ready" | sed -n 's|.*:\([0-9][0-9]*\)/*$|\1|p')
VIGIL_URL=http://127.0.0.1:${port:-$VIGIL_PORT}

# One real answer: its exact bytes become nginx's body.
code=$(curl -sS --max-time 5 -H 'Content-Type: application/json' --data-binary "$REQUEST" \
    -o "$WORK/vigil-answer.json" -w '%{http_code}' "$VIGIL_URL/predict") || true
if [ "$code" != 200 ] || ! grep -qF "$EXPECTED" "$WORK/vigil-answer.json"; then
    cat "$WORK/vigil-answer.json" >&2 2>/dev/null || true
    die "POST $VIGIL_URL/predict answered $code without '$EXPECTED'"
fi
ANSWER=$(cat "$WORK/vigil-answer.json")
ANSWER_BYTES=$(wc -c <"$WORK/vigil-answer.json")
RSS_IDLE_KIB=$(rss_kib "$VIGIL_PID")

# ---- nginx ----------------------------------------------------------------------------------------

# vigil's answer verbatim when nginx can carry it in a single-quoted string unchanged (no quote,
# backslash, '$' or control characters); otherwise a generated body of the same length that still
# carries the prediction, so the verification below holds for both servers.
if [ "$(wc -l <"$WORK/vigil-answer.json")" = 0 ] &&
    ! LC_ALL=C grep -q "['\\\$[:cntrl:]]" "$WORK/vigil-answer.json"; then
    BODY=$ANSWER
    BODY_KIND="vigil's answer, verbatim"
else
    BODY="{$EXPECTED,\"pad\":\"\"}"
    pad=$((ANSWER_BYTES - ${#BODY}))
    [ "$pad" -ge 0 ] || die "vigil's answer is shorter than the generated body"
    BODY="{$EXPECTED,\"pad\":\"$(printf '%*s' "$pad" '' | tr ' ' x)\"}"
    BODY_KIND="generated, padded to the length of vigil's answer"
fi

NGINX_PORT=$(free_port)
USER_LINE="# not root: nginx runs as the user who started it"
if [ "$(id -u)" -eq 0 ]; then
    # As root, nginx would hand its workers to "nobody"; keep them as the current user.
    USER_LINE="user $(id -un) $(id -gn);"
fi
conf=$(cat "$HERE/nginx.conf.in")
conf=${conf//@USER_LINE@/$USER_LINE}
conf=${conf//@WORKERS@/$(nproc)}
conf=${conf//@PREFIX@/$WORK/nginx}
conf=${conf//@PORT@/$NGINX_PORT}
conf=${conf//@BODY@/$BODY}
printf '%s\n' "$conf" >"$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    >"$WORK/nginx/stdout" 2>&1 &
NGINX_PID=$!
NGINX_URL=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$NGINX_URL/" && break
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$NGINX_PID" 2>/dev/null || {
    cat "$WORK/nginx/stdout" "$WORK/nginx/error.log" >&2 2>/dev/null || true
    die "nginx did not start (config: $WORK/nginx/nginx.conf)"
}

# Both answers to the same request: status, body length, content type, header size.
probe() {
    curl -sS --max-time 5 -H 'Content-Type: application/json' --data-binary "$REQUEST" \
        -o "$WORK/$1-probe.json" -w '%{http_code} %{size_download} %{size_header} %{content_type}' \
        "$2/predict"
}
read -r v_code v_size v_header v_type <<<"$(probe vigil "$VIGIL_URL")"
read -r n_code n_size n_header n_type <<<"$(probe nginx "$NGINX_URL")"
[ "$n_code" = 200 ] || die "nginx answered POST /predict with $n_code"
[ "$v_code" = 200 ] || die "vigil answered POST /predict with $v_code"
[ "$n_size" = "$v_size" ] || die "body sizes differ: vigil $v_size bytes, nginx $n_size bytes"
grep -qF "$EXPECTED" "$WORK/nginx-probe.json" || die "nginx's body lacks '$EXPECTED'"

# ---- measuring ------------------------------------------------------------------------------------

VERIFY_FAILED=0
LINE=""
# run_wrk LABEL URL SECONDS CONNECTIONS THREADS: one wrk run; its summary line goes to $LINE and
# $WORK/results.txt, its whole output to $WORK/wrk-LABEL.log.
run_wrk() {
    local label=$1 url=$2 secs=$3 conns=$4 threads=$5 log=$WORK/wrk-$1.log
    echo "wrk: $label ($secs s, $conns connections, $threads threads) ..." >&2
    kill -0 "$VIGIL_PID" 2>/dev/null || die "vigil has exited (log: $WORK/vigil.stderr)"
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx has exited (log: $WORK/nginx/error.log)"
    # In the background and waited for, so that a signal runs the traps at once.
    wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 2s --latency \
        -s "$HERE/predict.lua" "$url/predict" -- "$EXPECTED" >"$log" 2>&1 &
    WRK_PID=$!
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    if [ "$rc" != 0 ]; then
        cat "$log" >&2
        die "wrk failed ($label)"
    fi
    LINE=$(grep '^vgbench ' "$log" | tail -n 1)
    [ -n "$LINE" ] || die "no summary from wrk ($label), see $log"
    echo "$label $LINE" >>"$WORK/results.txt"
    local n bad_status bad_body sock
    n=$(field "$LINE" responses)
    bad_status=$(field "$LINE" non_200)
    bad_body=$(field "$LINE" wrong_body)
    sock=$(($(field "$LINE" err_connect) + $(field "$LINE" err_read) + $(field "$LINE" err_write) +
        $(field "$LINE" err_timeout)))
    printf '  %-22s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  checked %d answers: %d non-200, %d wrong body, %d socket errors\n' \
        "$label" "$(field "$LINE" rps)" "$(ms "$(field "$LINE" p50_us)")" \
        "$(ms "$(field "$LINE" p99_us)")" "$n" "$bad_status" "$bad_body" "$sock" >&2
    if [ "$bad_status" != 0 ] || [ "$bad_body" != 0 ] || [ "$sock" != 0 ] || [ "$n" = 0 ]; then
        VERIFY_FAILED=1
    fi
}
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
# Mean of a field over the results whose label matches a pattern.
mean() {
    awk -v pat="$1" -v key="$2" '$1 ~ pat {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) { s += kv[2]; n++ } }
    } END { if (n) printf "%.3f", s / n; else print "nan" }' "$WORK/results.txt"
}
# Highest value of a field over the results whose label matches a pattern.
best() {
    awk -v pat="$1" -v key="$2" '$1 ~ pat {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key && (!n++ || kv[2] > m)) m = kv[2] }
    } END { if (n) printf "%.3f", m; else print "nan" }' "$WORK/results.txt"
}
sum() {
    awk -v key="$1" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) s += kv[2] }
    } END { printf "%d", s }' "$WORK/results.txt"
}

# /metrics once a second, as a Prometheus server would scrape; counts and times the scrapes.
scrape_loop() {
    local ok=0 bad=0 secs=0 out=$1 reply
    trap 'exit 0' TERM
    while :; do
        reply=$(curl -s -o "$WORK/metrics.txt" --max-time 2 -w '%{http_code} %{time_total}' \
            "$VIGIL_URL/metrics") || true
        if [ "${reply%% *}" = 200 ] && [ -s "$WORK/metrics.txt" ]; then
            ok=$((ok + 1))
            secs=$(awk -v a="$secs" -v b="${reply#* }" 'BEGIN { print a + b }')
        else
            bad=$((bad + 1))
        fi
        echo "$ok $bad $secs" >"$out"
        sleep 1
    done
}
SCRAPES_OK=0
SCRAPES_BAD=0
SCRAPE_SECS=0
run_vigil_scraped() {
    local label=$1
    scrape_loop "$WORK/scrapes-$label" &
    SCRAPER_PID=$!
    run_wrk "$label" "$VIGIL_URL" "$RUN_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
    stop_pid "$SCRAPER_PID"
    SCRAPER_PID=""
    local ok bad secs
    read -r ok bad secs <"$WORK/scrapes-$label"
    echo "  $ok scrapes of /metrics during the run, $bad failed" >&2
    SCRAPES_OK=$((SCRAPES_OK + ok))
    SCRAPES_BAD=$((SCRAPES_BAD + bad))
    SCRAPE_SECS=$(awk -v a="$SCRAPE_SECS" -v b="$secs" 'BEGIN { print a + b }')
}

echo "answers: vigil $v_size bytes ($v_type, headers $v_header bytes), nginx $n_size bytes ($n_type, headers $n_header bytes); nginx body: $BODY_KIND" >&2
echo "vigil idle RSS after one request: $RSS_IDLE_KIB KiB" >&2
if [ "$WARMUP_SECONDS" -gt 0 ]; then
    run_wrk warmup-nginx "$NGINX_URL" "$WARMUP_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
    run_wrk warmup-vigil "$VIGIL_URL" "$WARMUP_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
fi
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    run_wrk "nginx-$round" "$NGINX_URL" "$RUN_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
    if [ $((round % 2)) = 1 ]; then
        run_wrk "vigil-$round" "$VIGIL_URL" "$RUN_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
        run_vigil_scraped "vigilscraped-$round"
    else
        run_vigil_scraped "vigilscraped-$round"
        run_wrk "vigil-$round" "$VIGIL_URL" "$RUN_SECONDS" "$CONNECTIONS" "$WRK_THREADS"
    fi
done
# Latency without queueing: one connection, one request at a time.
run_wrk nginx-1conn "$NGINX_URL" "$RUN_SECONDS" 1 1
run_wrk vigil-1conn "$VIGIL_URL" "$RUN_SECONDS" 1 1
RSS_LOADED_KIB=$(rss_kib "$VIGIL_PID")
kill -0 "$VIGIL_PID" 2>/dev/null || die "vigil exited during the benchmark"
kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited during the benchmark"

# ---- report ---------------------------------------------------------------------------------------

NGINX_RPS=$(mean '^nginx-[0-9]+$' rps)
VIGIL_RPS=$(mean '^vigil-[0-9]+$' rps)
SCRAPED_RPS=$(mean '^vigilscraped-[0-9]+$' rps)
RATIO=$(awk -v v="$VIGIL_RPS" -v n="$NGINX_RPS" 'BEGIN { printf "%.3f", v / n }')
SCRAPE_PCT=$(awk -v a="$VIGIL_RPS" -v b="$SCRAPED_RPS" 'BEGIN { printf "%.2f", (a - b) / a * 100 }')
# Other processes only ever slow a run down, so the best round of each is the other estimate.
NGINX_BEST=$(best '^nginx-[0-9]+$' rps)
VIGIL_BEST=$(best '^vigil-[0-9]+$' rps)
SCRAPED_BEST=$(best '^vigilscraped-[0-9]+$' rps)
RATIO_BEST=$(awk -v v="$VIGIL_BEST" -v n="$NGINX_BEST" 'BEGIN { printf "%.3f", v / n }')
SCRAPE_PCT_BEST=$(awk -v a="$VIGIL_BEST" -v b="$SCRAPED_BEST" 'BEGIN { printf "%.2f", (a - b) / a * 100 }')
V_P50=$(ms "$(mean '^vigil-[0-9]+$' p50_us)")
V_P99=$(ms "$(mean '^vigil-[0-9]+$' p99_us)")
N_P50=$(ms "$(mean '^nginx-[0-9]+$' p50_us)")
N_P99=$(ms "$(mean '^nginx-[0-9]+$' p99_us)")
V1_P50=$(ms "$(mean '^vigil-1conn$' p50_us)")
V1_P99=$(ms "$(mean '^vigil-1conn$' p99_us)")
N1_P50=$(ms "$(mean '^nginx-1conn$' p50_us)")
N1_P99=$(ms "$(mean '^nginx-1conn$' p99_us)")
V1_RPS=$(mean '^vigil-1conn$' rps)
N1_RPS=$(mean '^nginx-1conn$' rps)
RSS_IDLE_MIB=$(awk -v k="$RSS_IDLE_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
RSS_LOADED_MIB=$(awk -v k="$RSS_LOADED_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
SCRAPE_MS=$(awk -v s="$SCRAPE_SECS" -v n="$SCRAPES_OK" 'BEGIN { printf "%.2f", n ? s / n * 1000 : 0 }')
CHECKED=$(sum responses)
BAD=$(($(sum non_200) + $(sum wrong_body)))
SOCK=$(($(sum err_connect) + $(sum err_read) + $(sum err_write) + $(sum err_timeout)))

verdict() { # verdict VALUE OP LIMIT
    if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? v >= l : v < l) }'; then
        echo meets
    else
        echo misses
    fi
}
intfmt() { printf '%.0f' "$1"; }

table() {
    echo "| figure | value | target | |"
    echo "|---|---:|---|---|"
    echo "| nginx, static body (64 connections) | $(intfmt "$NGINX_RPS") req/s | baseline | |"
    echo "| vigil, POST /predict (64 connections) | $(intfmt "$VIGIL_RPS") req/s | | |"
    echo "| vigil / nginx throughput | $RATIO | >= $TARGET_RATIO | $(verdict "$RATIO" ">=" "$TARGET_RATIO") |"
    echo "| same, best round of each ($(intfmt "$VIGIL_BEST") / $(intfmt "$NGINX_BEST") req/s) | $RATIO_BEST | (information) | |"
    echo "| vigil latency p50 (64 connections) | $V_P50 ms | | |"
    echo "| vigil latency p99 (64 connections) | $V_P99 ms | < $TARGET_P99_MS ms | $(verdict "$V_P99" "<" "$TARGET_P99_MS") |"
    echo "| nginx latency p50 / p99 (64 connections) | $N_P50 / $N_P99 ms | | |"
    echo "| vigil latency p50 / p99 (1 connection, $(intfmt "$V1_RPS") req/s) | $V1_P50 / $V1_P99 ms | (information) | |"
    echo "| nginx latency p50 / p99 (1 connection, $(intfmt "$N1_RPS") req/s) | $N1_P50 / $N1_P99 ms | (information) | |"
    echo "| vigil without scraping | $(intfmt "$VIGIL_RPS") req/s | | |"
    echo "| vigil scraped once a second | $(intfmt "$SCRAPED_RPS") req/s | | |"
    echo "| scrape cost | $SCRAPE_PCT % | < $TARGET_SCRAPE_PCT % | $(verdict "$SCRAPE_PCT" "<" "$TARGET_SCRAPE_PCT") |"
    echo "| same, best round of each ($(intfmt "$SCRAPED_BEST") req/s scraped) | $SCRAPE_PCT_BEST % | (information) | |"
    echo "| vigil RSS, idle after one request | $RSS_IDLE_MIB MiB | < $TARGET_RSS_MIB MiB | $(verdict "$RSS_IDLE_MIB" "<" "$TARGET_RSS_MIB") |"
    echo "| vigil RSS after the load | $RSS_LOADED_MIB MiB | | |"
    echo "| answers checked (status 200, body has \`$EXPECTED\`) | $CHECKED | all good | $([ "$BAD" = 0 ] && echo meets || echo misses): $BAD wrong |"
    echo "| socket errors (connect, read, write, timeout) | $SOCK | 0 | $([ "$SOCK" = 0 ] && echo meets || echo misses) |"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
context() {
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPUs shared by wrk and the server, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
    echo "Tools: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') ($(nproc) workers), wrk $(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p') ($WRK_THREADS threads, $CONNECTIONS keep-alive connections, lua check of every answer); vigil $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)') with default threads ($(nproc))."
    echo "Runs: $ROUNDS round(s) of $RUN_SECONDS s each for nginx, vigil and vigil scraped (figures are means over rounds, with the best round as a second estimate; scraped and unscraped alternate in order), after a $WARMUP_SECONDS s warm-up of each; then $RUN_SECONDS s at one connection for each. Body: $v_size bytes for both ($BODY_KIND); response headers: vigil $v_header bytes, nginx $n_header bytes."
    echo "Per run (req/s, p99 ms): $(awk '$1 !~ /^warmup/ {
        rps = p99 = ""
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "rps") rps = kv[2]; if (kv[1] == "p99_us") p99 = kv[2] }
        printf "%s%s %.0f (%.2f)", sep, $1, rps, p99 / 1000; sep = ", "
    }' "$WORK/results.txt")."
    echo "Scraping: $SCRAPES_OK scrapes of /metrics ($SCRAPES_BAD failed), $SCRAPE_MS ms each on average, $(wc -c <"$WORK/metrics.txt" 2>/dev/null || echo 0) bytes."
}

echo
echo "HTTP benchmark (bench/http/run.sh; logs in $WORK)"
context
echo
table
echo
echo "Targets are for information; the benchmark fails only when an answer is wrong or a run fails."

if [ "$DOCS" = 1 ]; then
    write_figures "$ROOT"/docs/benchmarks-http.md
fi

if [ "$VERIFY_FAILED" != 0 ] || [ "$SCRAPES_BAD" != 0 ]; then
    echo "run.sh: wrong answers, socket errors or failed scrapes (see above and $WORK)" >&2
    exit 1
fi
