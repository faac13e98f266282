# shellcheck shell=bash
# shellcheck disable=SC2034  # SERVER_*, IRIS_SHA256, STATUS are read by the sourcing scripts
# Shared helpers for the server suites (tests/server/test_server.sh, tests/server/test_v2.sh).
# Source tests/lib.sh first, set VIGIL (the binary) and cd into a scratch directory, then:
#
#   fresh_work_dir DIR            unsets every VIGIL_* variable (each test sets the ones it
#                                 wants), empties DIR and cd's into it (exits on failure).
#   make_test_repo DEST SRC_DIR   a model repository in DEST: models/iris of the source tree (or,
#                                 when the tree has none, iris trained from data/iris.csv), plus
#                                 "broken" (a corrupt model.onnx) and "badconfig" (config.json
#                                 that is not JSON). Sets IRIS_SHA256.
#   server_start NAME ARGS...     runs `$VIGIL serve ARGS` in the background (stderr in NAME.log,
#                                 stdout in NAME.out) and waits up to 15 s for "serving
#                                 http://HOST:PORT" on stderr. Sets SERVER_PID, SERVER_PORT,
#                                 SERVER_URL (always http://127.0.0.1:PORT), SERVER_LOG, and
#                                 resets REQ_COUNT to 0 and REQ_LOG to NAME.requests. Returns 1
#                                 (after printing the log) if the server exits or is not ready in
#                                 time. Usual ARGS: --host 127.0.0.1 --port 0 --models DIR.
#   server_stop [SECONDS]         SIGTERM, then waits up to SECONDS (default 15) for the exit;
#                                 SIGKILL after that. Sets SERVER_EXIT (the exit status, or
#                                 "timeout") and SERVER_STOP_SECONDS.
#   req METHOD PATH [CURL ARGS]   one request to $SERVER_URL with a 10 s limit: STATUS (000 when
#                                 curl got no answer), body in resp.body, headers in resp.hdr,
#                                 REQ_COUNT incremented and "METHOD PATH" appended to REQ_LOG
#                                 (the access-log tests count on them; server_start resets both).
#   post_json PATH JSON [ARGS]    req POST with Content-Type application/json and the body JSON.
#   header NAME                   value of header NAME in resp.hdr (last response), "" if absent.
#   expect_code WANT NAME         STATUS == WANT
#   expect_json NAME FILTER       `jq -e FILTER resp.body` succeeds
#   expect_eq NAME GOT WANT       string equality
#   metric FILE NAME [k="v"...]   sum of the samples of NAME in the 0.0.4 text FILE whose labels
#                                 include every k="v" given; "absent" when none matches.
#   scrape FILE                   GET /metrics into FILE (expects 200).
#   check_sanitizers LOG NAME     LOG holds no AddressSanitizer/LeakSanitizer/UBSan report.
#   free_port                     prints a TCP port no socket uses right now, below the
#                                 ephemeral range.
#   stop_all_servers              kills every server still running (installed as an EXIT trap).
#
# Every server started here is killed when the sourcing script exits.

SERVER_PIDS=""
REQ_COUNT=0
REQ_LOG=requests.txt
CURL_TIMEOUT=${CURL_TIMEOUT:-10}

stop_all_servers() {
    local p
    for p in $SERVER_PIDS; do
        kill -KILL "$p" 2>/dev/null
    done
}
trap stop_all_servers EXIT

fresh_work_dir() {
    unset "${!VIGIL_@}"
    rm -rf "$1"
    mkdir -p "$1"
    cd "$1" || exit 1
}

make_test_repo() {
    local dest=$1 src=$2
    rm -rf "$dest"
    mkdir -p "$dest"
    if [ -f "$src/models/iris/1/model.onnx" ]; then
        cp -r "$src/models/iris" "$dest/iris"
    else
        "$VIGIL" train --data "$src/data/iris.csv" --target species --name iris --repo "$dest" \
            --seed 42 --description "Iris species classifier (test)" >train.log 2>&1 || {
            echo "FAIL: cannot train iris for the test repository:" >&2
            tail -5 train.log >&2
            return 1
        }
    fi
    IRIS_SHA256=$(sha256sum "$dest/iris/1/model.onnx" | cut -d' ' -f1)

    # broken: a valid config.json, but model.onnx is not a protobuf of an ONNX model
    mkdir -p "$dest/broken/1"
    jq '.name = "broken"' "$dest/iris/1/config.json" >"$dest/broken/1/config.json"
    cp "$dest/broken/1/config.json" "$dest/broken/config.json"
    head -c 300 "$dest/iris/1/model.onnx" >"$dest/broken/1/model.onnx"
    printf '\377\377\377garbage' >>"$dest/broken/1/model.onnx"

    # badconfig: a good model.onnx, but config.json is not JSON
    mkdir -p "$dest/badconfig/1"
    cp "$dest/iris/1/model.onnx" "$dest/badconfig/1/model.onnx"
    printf '{"schema_version": 1, "name": "badconfig", ' >"$dest/badconfig/1/config.json"
    cp "$dest/badconfig/1/config.json" "$dest/badconfig/config.json"
}

server_start() {
    local name=$1
    shift
    SERVER_LOG=$PWD/$name.log
    REQ_COUNT=0
    REQ_LOG=$PWD/$name.requests
    : >"$REQ_LOG"
    "$VIGIL" serve "$@" >"$name.out" 2>"$SERVER_LOG" &
    SERVER_PID=$!
    SERVER_PIDS="$SERVER_PIDS $SERVER_PID"
    SERVER_PORT=""
    SERVER_URL=""
    local i line
    for i in $(seq 150); do
        line=$(grep -m1 -o 'serving http://[^ ]*' "$SERVER_LOG" 2>/dev/null)
        if [ -n "$line" ]; then
            SERVER_PORT=${line##*:}
            SERVER_PORT=${SERVER_PORT%%[!0-9]*}
            SERVER_URL=http://127.0.0.1:$SERVER_PORT
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "FAIL: server '$name' not ready (vigil serve $*); its stderr:" >&2
    sed 's/^/    /' "$SERVER_LOG" | tail -20 >&2
    return 1
}

server_stop() {
    local limit=${1:-15} t0
    t0=$(date +%s.%N)
    kill -TERM "$SERVER_PID" 2>/dev/null
    SERVER_EXIT=timeout
    for _ in $(seq $((limit * 20))); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    else
        wait "$SERVER_PID"
        SERVER_EXIT=$?
    fi
    SERVER_STOP_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
}

req() {
    local method=$1 path=$2
    shift 2
    REQ_COUNT=$((REQ_COUNT + 1))
    echo "$method $path" >>"$REQ_LOG"
    rm -f resp.body resp.hdr
    STATUS=$(curl -sS -m "$CURL_TIMEOUT" -X "$method" -o resp.body -D resp.hdr \
        -w '%{http_code}' "$@" "$SERVER_URL$path" 2>curl.err) || STATUS=000
    touch resp.body resp.hdr
}

post_json() {
    local path=$1 body=$2
    shift 2
    req POST "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

header() {
    # the last header block (curl writes one per response, e.g. after 100 Continue)
    awk -v name="$1" '
        BEGIN { want = tolower(name) }
        /^HTTP\// { v = "" }
        { sub(/\r$/, "") }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == want) {
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v) } }
        END { print v }' resp.hdr
}

expect_code() {
    if [ "$STATUS" = "$1" ]; then ok; else
        bad "$2: status $STATUS, expected $1; body: $(head -c 300 resp.body)"
    fi
}

expect_json() {
    if jq -e "$2" resp.body >/dev/null 2>&1; then ok; else
        bad "$1: body fails jq '$2': $(head -c 400 resp.body)"
    fi
}

expect_eq() {
    if [ "$2" = "$3" ]; then ok; else
        bad "$1: got '$2', expected '$3'"
    fi
}

metric() {
    local file=$1 name=$2
    shift 2
    awk -v name="$name" -v want="$(printf '%s\n' "$@")" '
        BEGIN { n = split(want, w, "\n"); found = 0; sum = 0 }
        /^#/ || NF < 2 { next }
        {
            value = $NF
            series = substr($0, 1, length($0) - length(value) - 1)
            base = series
            sub(/\{.*/, "", base)
            if (base != name) next
            labels = ","
            b = index(series, "{")
            if (b) { labels = "," substr(series, b + 1); sub(/\}$/, ",", labels) }
            for (i = 1; i <= n; i++)
                if (w[i] != "" && index(labels, "," w[i] ",") == 0) next
            found = 1
            sum += value
        }
        END { if (!found) print "absent"; else printf "%.15g\n", sum }' "$file"
}

scrape() {
    req GET /metrics
    cp resp.body "$1"
    if [ "$STATUS" != 200 ]; then
        bad "scrape: GET /metrics answered $STATUS"
    fi
}

check_sanitizers() {
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' \
        "$1"; then
        bad "$2: sanitizer report in $1:"
        grep -E -A15 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" | head -40 >&2
    else
        ok
    fi
}

free_port() {
    # Below the ephemeral range (so no outgoing connection holds it) and used by no socket in
    # any state, listening or not.
    local low p
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$low" -gt 12000 ] || low=32768
    while :; do
        p=$((10000 + RANDOM % (low - 10000)))
        if ! awk -v port="$(printf '%04X' "$p")" 'FNR > 1 { split($2, a, ":");
                if (a[2] == port) found = 1 } END { exit !found }' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
}
