# Shared helpers for the CLI tests: check NAME CMD... records a pass/fail; finish prints the
# closing line, removes $scratch (kept with DC_KEEP_TMP=1: the suite's tests together write several
# GB) and sets the exit status.
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect_rc CODE DESC CMD...: runs CMD, checks its exit code; stderr saved in $scratch/stderr
expect_rc() {
    want=$1; desc=$2; shift 2
    "$@" >"$scratch/stdout" 2>"$scratch/stderr"
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$desc: exit $got, expected $want: $(head -c 400 "$scratch/stderr")"; fi
}
# expect_stderr TEXT DESC: the last command's stderr contains TEXT
expect_stderr() {
    if grep -qF -- "$1" "$scratch/stderr"; then ok; else bad "$2: stderr lacks '$1': $(head -c 400 "$scratch/stderr")"; fi
}
differ() { ! cmp -s "$1" "$2"; }
check() { desc=$1; shift; if "$@"; then ok; else bad "$desc"; fi; }
finish() {
    echo "$pass passed, $fail failed"
    [ "${DC_KEEP_TMP:-0}" = 1 ] || rm -rf "$scratch"
    [ "$fail" -eq 0 ]
}
