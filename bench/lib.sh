# shellcheck shell=bash
# Shared helpers of the benchmark scripts (bench/http/run.sh, bench/http/quality_cost.sh,
# bench/load/run.sh). Source it after setting ROOT (the source tree), BUILD (a build directory)
# and CMD (the command line, for the docs).
#
#   prepare_vigil            makes BUILD absolute, configures it if needed and builds the vigil
#                            target there; sets VIGIL (the binary) and MODELS ($ROOT/models, with
#                            the built-in Iris model trained if missing)
#   stop_pid PID             SIGTERM, up to 5 s for the exit, then SIGKILL; reaps it
#   die MESSAGE              "run.sh: MESSAGE" on stderr, exit 1
#   ensure_iris MODELS       trains the built-in Iris model into MODELS unless it is there (the
#                            same command as `make build`)
#   write_figures DOC        replaces the text between "<!-- figures:begin" and
#                            "<!-- figures:end" lines of DOC with "Latest figures from CMD
#                            (date):", the output of the caller's `context` (a blank line after
#                            each line) and of its `table`

stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

die() {
    echo "run.sh: $*" >&2
    exit 1
}

prepare_vigil() {
    mkdir -p "$BUILD"
    BUILD=$(cd "$BUILD" && pwd)
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$BUILD" --target vigil >/dev/null
    VIGIL=$BUILD/vigil
    MODELS=$ROOT/models
    ensure_iris "$MODELS" || die "cannot train the built-in Iris model"
}

ensure_iris() {
    local models=$1
    [ -f "$models/iris/1/model.onnx" ] && return 0
    "$VIGIL" train --data "$ROOT/data/iris.csv" --target species --name iris --repo "$models" \
        --seed 42 --description "Iris species classifier (built-in)" >/dev/null
}

write_figures() {
    local doc=$1 figures
    figures=$(mktemp)
    {
        echo "Latest figures from \`$CMD\` ($(date -u '+%Y-%m-%d %H:%M UTC')):"
        echo
        context | sed 's/$/\n/'
        table
    } >"$figures"
    if grep -q '^<!-- figures:begin' "$doc" && grep -q '^<!-- figures:end' "$doc"; then
        awk -v f="$figures" '
            /^<!-- figures:begin/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
            /^<!-- figures:end/ { skip = 0 }
            !skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
        echo "wrote the figures to $doc" >&2
        rm -f "$figures"
    else
        echo "run.sh: $doc has no figures markers; figures left in $figures" >&2
    fi
}
