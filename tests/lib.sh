# Shared helpers for the shell test suites (tests/*/test_*.sh); source it, then use:
#   ok / bad MESSAGE               count a passed / failed check (failures are printed)
#   expect_status CODE NAME -- CMD  run CMD (under $VG_TEST_TIMEOUT if set), stdout/stderr kept
#                                   in out.txt / err.txt, check its exit status
#   expect_err PATTERN NAME         err.txt of the last command matches PATTERN (grep -E)
#   finish SUITE                    print "SUITE: N passed, N failed" and return the verdict
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

expect_status() {
    local want=$1 name=$2
    shift 3
    ${VG_TEST_TIMEOUT:-} "$@" >out.txt 2>err.txt
    local got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$name: exit $got, expected $want"
        sed 's/^/    stderr: /' err.txt | head -5 >&2
        return 1
    fi
    ok
    return 0
}

expect_err() {
    if grep -Eq -- "$1" err.txt; then ok; else
        bad "$2: stderr lacks /$1/: $(head -c 300 err.txt)"
    fi
}

finish() {
    echo "$1 tests: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
