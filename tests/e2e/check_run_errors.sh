#!/bin/sh
# check_run_errors.sh QDEPLOY PYTHON BAD_DIR: `qdeploy run` on bad input
# (wrong .npy shape or dtype, a missing input, an unreadable .npy, an
# unsupported op) fails with one line naming the culprit and a non-zero
# status that is not a signal; the good case runs.
set -u
QDEPLOY=$1
PYTHON=$2
DIR=$3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL="$DIR/small_conv.onnx"

"$PYTHON" - "$WORK" <<'PY'
import sys, numpy as np
w = sys.argv[1]
np.save(f"{w}/good.npy", np.random.default_rng(0).standard_normal((1, 3, 16, 16), dtype=np.float32))
np.save(f"{w}/shape.npy", np.zeros((1, 3, 8, 8), np.float32))
np.save(f"{w}/dtype.npy", np.zeros((1, 3, 16, 16), np.float64))
open(f"{w}/garbage.npy", "wb").write(b"\x93NUMPY\x01\x00\xff\xffnot a header")
PY

fails=0
# expect_fail NAME PATTERN... -- ARGS: status 1..127, one stderr line with all patterns.
expect_fail() {
    name=$1; shift
    pats=""
    while [ "$1" != "--" ]; do pats="$pats|$1"; shift; done
    shift
    "$QDEPLOY" run "$@" > "$WORK/out" 2> "$WORK/err"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
        echo "FAIL $name: exit status $rc"; fails=$((fails + 1)); return
    fi
    if [ "$(wc -l < "$WORK/err")" -ne 1 ]; then
        echo "FAIL $name: stderr is not one line:"; cat "$WORK/err"; fails=$((fails + 1)); return
    fi
    for p in $(echo "$pats" | tr '|' ' '); do
        if ! grep -q -- "$p" "$WORK/err"; then
            echo "FAIL $name: '$p' not in: $(cat "$WORK/err")"; fails=$((fails + 1)); return
        fi
    done
    echo "ok   $name: $(cat "$WORK/err")"
}

expect_fail wrong_shape "input" "1x3x16x16" "1x3x8x8" -- "$MODEL" --input "$WORK/shape.npy"
expect_fail wrong_dtype "input" "float32" "float64" -- "$MODEL" --input "$WORK/dtype.npy"
expect_fail unreadable_npy "garbage.npy" -- "$MODEL" --input "$WORK/garbage.npy"
expect_fail missing_npy "nothere.npy" -- "$MODEL" --input "$WORK/nothere.npy"
expect_fail wrong_name "nosuchinput" -- "$MODEL" --input "nosuchinput=$WORK/good.npy"
expect_fail unknown_op "mystery_node" "FrobnicateV2" -- "$DIR/unknown_op.onnx" --input "$WORK/good.npy"
expect_fail missing_model "absent.onnx" -- "$DIR/absent.onnx" --input "$WORK/good.npy"
expect_fail bad_precision "high-precision" "fp16" -- "$MODEL" --input "$WORK/good.npy" --high-precision fp16
expect_fail bf16_reference "bfloat16" "reference" -- "$MODEL" --input "$WORK/good.npy" --high-precision bf16 --reference

if "$QDEPLOY" run "$MODEL" --input "$WORK/good.npy" --output "$WORK/y.npy" > "$WORK/out" 2>&1 &&
   [ -s "$WORK/y.npy" ]; then
    echo "ok   good input"
else
    echo "FAIL good input:"; cat "$WORK/out"; fails=$((fails + 1))
fi
# No partial output file on failure.
rm -f "$WORK/y2.npy"
"$QDEPLOY" run "$MODEL" --input "$WORK/shape.npy" --output "$WORK/y2.npy" 2> /dev/null
if [ -e "$WORK/y2.npy" ]; then
    echo "FAIL an output file was written for a failed run"; fails=$((fails + 1))
fi
[ $fails -eq 0 ] && echo "all run error cases behave" || exit 1
