#!/usr/bin/env bash
# deepcast tokenize against the reference ids of the real DeepSeek-V3 tokenizer.
# usage: tokenize.sh DEEPCAST_BINARY TESTS_SOURCE_DIR SCRATCH_DIR
set -e
BIN=$1
SRC=$2
TMP=$3
rm -rf "$TMP"
mkdir -p "$TMP/tok"
tar -xzf "$SRC/data/tokenizer/deepseek-v3.tar.gz" -C "$TMP/tok"
CASES=$TMP/tok/tokenize-cases.json

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect_eq() { # name got want
    if [ "$2" == "$3" ]; then ok; else bad "$1: got '$2', want '$3'"; fi
}

# ids of a case from tokenize-cases.json (one case per line; texts here need no JSON escapes)
case_ids() { # text field(ids|ids_with_special)
    grep -F "{\"text\": \"$1\", \"ids\"" "$CASES" | head -n 1 |
        sed -e "s/.*\"$2\": \[\([^]]*\)\].*/\1/"
}

n_cases=0
for text in "Hello world" \
            "The quick brown fox jumps over the lazy dog." \
            "Don't panic! It's only a test, isn't it?" \
            "1234567" \
            "<｜User｜>你好<｜Assistant｜>" \
            "こんにちは、世界！今日はいい天気ですね。"; do
    n_cases=$((n_cases + 1))
    f=$TMP/case$n_cases.txt
    printf '%s' "$text" > "$f"
    want_sp=$(case_ids "$text" ids_with_special)
    want=$(case_ids "$text" ids)
    if [ -z "$want_sp" ] || [ -z "$want" ]; then bad "case '$text' not found in $CASES"; continue; fi
    expect_eq "json '$text'" "$("$BIN" tokenize "$TMP/tok" --text "$f" --json)" "{\"ids\": [$want_sp]}"
    expect_eq "json no-special '$text'" \
        "$("$BIN" tokenize "$TMP/tok" --json --no-special --text "$f")" "{\"ids\": [$want]}"
    expect_eq "plain '$text'" "$("$BIN" tokenize "$TMP/tok" --text "$f")" "${want_sp//, / }"
done

# standard input, a tokenizer.json path, an empty text
expect_eq "stdin" "$(printf 'Hello world' | "$BIN" tokenize "$TMP/tok" --text - --json)" \
    '{"ids": [0, 19923, 2058]}'
expect_eq "file path" "$("$BIN" tokenize "$TMP/tok/tokenizer.json" --text "$TMP/case1.txt")" \
    "0 19923 2058"
: > "$TMP/empty.txt"
expect_eq "empty" "$("$BIN" tokenize "$TMP/tok" --text "$TMP/empty.txt" --json --no-special)" \
    '{"ids": []}'

# help and errors: exit codes are dc_status values, messages start with "deepcast: tokenize:"
rc=0; out=$("$BIN" tokenize --help) || rc=$?
expect_eq "--help exit" "$rc" 0
case $out in *"usage: deepcast tokenize"*) ok ;; *) bad "--help output: $out" ;; esac
rc=0; "$BIN" tokenize 2> "$TMP/err" || rc=$?
expect_eq "no args exit" "$rc" 2
rc=0; "$BIN" tokenize "$TMP/tok" --bogus --text "$TMP/case1.txt" 2> "$TMP/err" || rc=$?
expect_eq "unknown option exit" "$rc" 2
rc=0; "$BIN" tokenize "$TMP/tok" --text 2> "$TMP/err" || rc=$?
expect_eq "--text without value exit" "$rc" 2
rc=0; "$BIN" tokenize "$TMP/no-such-dir" --text "$TMP/case1.txt" 2> "$TMP/err" || rc=$?
expect_eq "missing dir exit" "$rc" 3
case $(cat "$TMP/err") in "deepcast: tokenize: "*no-such-dir/tokenizer.json*) ok ;;
    *) bad "missing dir message: $(cat "$TMP/err")" ;; esac
rc=0; "$BIN" tokenize "$TMP/tok" --text "$TMP/no-such-file" 2> "$TMP/err" || rc=$?
expect_eq "missing text exit" "$rc" 3
printf 'ab\377cd' > "$TMP/bad-utf8.txt"
rc=0; "$BIN" tokenize "$TMP/tok" --text "$TMP/bad-utf8.txt" 2> "$TMP/err" || rc=$?
expect_eq "invalid UTF-8 exit" "$rc" 8
case $(cat "$TMP/err") in "deepcast: tokenize: "*"offset 2"*) ok ;;
    *) bad "invalid UTF-8 message: $(cat "$TMP/err")" ;; esac
mkdir -p "$TMP/broken"
printf '{"model": ' > "$TMP/broken/tokenizer.json"
rc=0; "$BIN" tokenize "$TMP/broken" --text "$TMP/case1.txt" 2> "$TMP/err" || rc=$?
expect_eq "malformed tokenizer.json exit" "$rc" 4

echo "$pass passed, $fail failed"
[ "${DC_KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
[ "$fail" -eq 0 ]
