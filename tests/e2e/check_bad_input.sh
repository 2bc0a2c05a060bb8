#!/bin/sh
# check_bad_input.sh QDEPLOY DIR
#
# Runs `QDEPLOY inspect DIR/CASE` on every case written by
# tools/fixtures/make_bad_models.py. A bad case must:
#   - exit with a status in 1..127 (an error, not a signal, not a hang: 30 s limit);
#   - print exactly one line on stderr, naming the file and the node/tensor/
#     attribute/external file at fault (every word listed below; "a|b" = either).
# (does_not_exist.onnx is, as its name says, not there.)
# The good cases (small_conv.onnx, external_ok.onnx) must exit 0 with output.
# qdeploy runs in an empty temporary directory, so external data has to be
# found relative to the model file, not the working directory.
set -u

if [ $# -ne 2 ]; then
    echo "usage: check_bad_input.sh QDEPLOY DIR" >&2
    exit 2
fi
case "$1" in /*) QDEPLOY=$1 ;; *) QDEPLOY=$(pwd)/$1 ;; esac
DIR=$(cd "$2" && pwd) || { echo "check_bad_input: no directory $2" >&2; exit 2; }
[ -x "$QDEPLOY" ] || { echo "check_bad_input: $QDEPLOY is not executable" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qd-bad-input.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT HUP INT TERM
mkdir "$WORK/cwd"

TIMEOUT=""
if command -v timeout >/dev/null 2>&1; then
    TIMEOUT="timeout -k 5 30"
fi

failures=0
fail() {
    echo "FAIL $case_name: $*" >&2
    if [ -s "$WORK/err" ]; then
        echo "  stderr was:" >&2
        sed 's/^/  | /' "$WORK/err" | head -n 20 >&2
    fi
    failures=$((failures + 1))
}

run() {
    (cd "$WORK/cwd" && $TIMEOUT "$QDEPLOY" inspect "$DIR/$1" >"$WORK/out" 2>"$WORK/err")
    status=$?
}

# bad CASE WORD...   every WORD (or one of a|b) must be on the single stderr line
bad() {
    case_name=$1
    shift
    if [ "$case_name" != does_not_exist.onnx ] && [ ! -e "$DIR/$case_name" ]; then
        fail "fixture $DIR/$case_name is missing (run make_bad_models.py)"
        return
    fi
    run "$case_name"
    if [ "$status" -eq 0 ]; then
        fail "exit status 0, expected an error"
        return
    fi
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        fail "timed out (status $status)"
        return
    fi
    if [ "$status" -ge 128 ]; then
        fail "killed by signal $((status - 128)) (status $status)"
        return
    fi
    lines=$(grep -c . "$WORK/err")
    if [ "$lines" -ne 1 ]; then
        fail "expected one line on stderr, got $lines"
        return
    fi
    line=$(cat "$WORK/err")
    for word in "$case_name" "$@"; do
        found=0
        rest=$word
        while :; do
            alt=${rest%%|*}
            case "$line" in *"$alt"*) found=1 ;; esac
            [ "$alt" = "$rest" ] && break
            rest=${rest#*|}
        done
        if [ "$found" -eq 0 ]; then
            fail "stderr does not mention '$word'"
            return
        fi
    done
    echo "ok   $case_name: status $status: $line"
}

good() {
    case_name=$1
    run "$case_name"
    if [ "$status" -ne 0 ]; then
        fail "exit status $status, expected 0"
        return
    fi
    if [ ! -s "$WORK/out" ]; then
        fail "no output on stdout"
        return
    fi
    echo "ok   $case_name: loads"
}

bad truncated.onnx
bad random.onnx
bad empty.onnx
bad dir.onnx
bad missing_external.onnx weights.bin
bad escaping_external.onnx outside
bad unknown_op.onnx mystery_node FrobnicateV2
bad bad_attr_type.onnx conv_bad strides
bad dangling_input.onnx nowhere
bad cycle.onnx "a_node|b_node"
bad does_not_exist.onnx
good small_conv.onnx
good external_ok.onnx

if [ "$failures" -ne 0 ]; then
    echo "check_bad_input: $failures case(s) failed" >&2
    exit 1
fi
echo "check_bad_input: all cases passed"
