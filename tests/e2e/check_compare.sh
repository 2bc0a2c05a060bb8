#!/bin/sh
# check_compare.sh QDEPLOY PYTHON FIXTURES_DIR MODEL_NAME OUT_DIR
#
# `qdeploy compare` on a trained fixture (tests/fixtures/MODEL_NAME.onnx) with
# the real Fashion-MNIST test set (Debian's dataset-fashion-mnist), calibrated
# on the training images: the Markdown tables, the --json document against
# its schema with mixed losing at most 0.5 pp Top-1 against fp32 and fp32
# agreeing with torch's Top-1 (check_compare.py), the HTML report embedding
# it. Then `qdeploy quantize --json/--dump-plan` on the same model and
# `--plan` reading the dumped plan back (no calibration data: the same QDQ
# model), and the bad-input cases (missing labels, a bad plan file).
# Exits 77 (skipped) while the fixture is not there.
set -u
QDEPLOY=$1
PYTHON=$2
FX=$3
NAME=$4
OUT=$5
MODEL="$FX/$NAME.onnx"
FM=/usr/share/datasets/fashion-mnist
HERE=$(dirname "$0")
if [ ! -f "$MODEL" ]; then
    echo "SKIP: $MODEL is not there"
    exit 77
fi
rm -rf "$OUT"
mkdir -p "$OUT"
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
DATA="--data $FM/t10k-images-idx3-ubyte.gz --labels $FM/t10k-labels-idx1-ubyte.gz"
NORM="--mean 0.2860 --std 0.3530"

# shellcheck disable=SC2086
"$QDEPLOY" compare "$MODEL" $DATA --calib "$FM/train-images-idx3-ubyte.gz" $NORM \
    --out-dir "$OUT/models" --json "$OUT/compare.json" --report "$OUT/compare.html" \
    --threads 1 --iters 10 --profile-iters 5 > "$OUT/compare.md" 2> "$OUT/compare.err" ||
    fail "qdeploy compare: $(cat "$OUT/compare.err")"
cat "$OUT/compare.md"
grep -q '^| Variant | Top-1 | Top-5 | Latency (ms) | Speedup |$' "$OUT/compare.md" ||
    fail "no comparison table"
grep -q '^| Policy | Speedup vs fp32 | Top-1 drop (pp) |$' "$OUT/compare.md" ||
    fail "no summary table"
grep -q '^| Fused module | Count |$' "$OUT/compare.md" || fail "no fusion table"
[ -s "$OUT/compare.err" ] && fail "stderr is not a terminal: no progress output expected: $(head -3 "$OUT/compare.err")"
"$PYTHON" "$HERE/check_compare.py" "$OUT/compare.json" --data-count 10000 \
    --fixtures "$FX/fashion_mnist_fixtures.json" --model "$NAME" || fails=$((fails + 1))
grep -q 'id="qd-data"' "$OUT/compare.html" && grep -q '"qdeploy_compare"' "$OUT/compare.html" &&
    echo "ok   --report: $OUT/compare.html embeds the document" || fail "--report"

# quantize: --json report and --dump-plan; --plan without calibration data
# rebuilds the same QDQ model.
# shellcheck disable=SC2086
"$QDEPLOY" quantize "$MODEL" -o "$OUT/q.onnx" --calib "$FM/train-images-idx3-ubyte.gz" $NORM \
    --calib-batches 4 --batch-size 16 --json "$OUT/q.json" --dump-plan "$OUT/plan.json" \
    --threads 1 > "$OUT/q.txt" 2>&1 || fail "quantize: $(cat "$OUT/q.txt")"
grep -q '^QDQ pairs: ' "$OUT/q.txt" && grep -q '^Scales: ' "$OUT/q.txt" || fail "quantize text report: $(cat "$OUT/q.txt")"
"$QDEPLOY" quantize "$MODEL" -o "$OUT/q_plan.onnx" --plan "$OUT/plan.json" --json "$OUT/q_plan.json" \
    > "$OUT/q_plan.txt" 2>&1 || fail "quantize --plan: $(cat "$OUT/q_plan.txt")"
"$PYTHON" - "$OUT" <<'PY' || fails=$((fails + 1))
import json, sys, onnx
from onnx import numpy_helper as nh
out = sys.argv[1]
q, qp = json.load(open(f"{out}/q.json")), json.load(open(f"{out}/q_plan.json"))
for k in ("fusions", "qdq_pairs", "high_precision", "tensors", "scales"):
    assert k in q, f"--json lacks {k}"
assert q["fusions"] and all(f["count"] > 0 for f in q["fusions"])
pairs = q["qdq_pairs"]
assert pairs["activation"] > 0 and pairs["weight"] > 0, pairs
hp = q["high_precision"]
assert sum(hp["counts"].values()) == len(hp["nodes"]), hp["counts"]
acts = [t for t in q["tensors"] if t["kind"] != "weight"]
assert acts and all(t["amax"] > 0 and abs(t["scale"] - t["amax"] / 127) <= 1e-6 * t["scale"] for t in acts)
assert q["scales"]["activations"]["count"] == len(acts)
assert all(t["from_plan_file"] for t in qp["tensors"] if t["kind"] != "weight"), "--plan amax not used"
assert qp["qdq_pairs"] == pairs and qp["calibration_images"] == 0
a, b = onnx.load(f"{out}/q.onnx"), onnx.load(f"{out}/q_plan.onnx")
onnx.checker.check_model(b)
ia = {i.name: nh.to_array(i) for i in a.graph.initializer}
ib = {i.name: nh.to_array(i) for i in b.graph.initializer}
assert ia.keys() == ib.keys() and all((ia[k] == ib[k]).all() for k in ia), "initializers differ"
assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
print(f"ok   quantize --json ({pairs}), --plan read back: the same QDQ model, no calibration")
PY

# Bad input: one line naming the problem, non-zero status, nothing written.
expect_fail() {
    name=$1; pat=$2; shift 2
    rm -f "$OUT/bad.onnx" "$OUT/bad.json"
    "$QDEPLOY" "$@" > /dev/null 2> "$OUT/err"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "$name: exit status $rc"; return; fi
    grep -q -- "$pat" "$OUT/err" || fail "$name: '$pat' not in: $(cat "$OUT/err")"
    [ "$(wc -l < "$OUT/err")" -eq 1 ] || fail "$name: more than one line: $(cat "$OUT/err")"
    [ -e "$OUT/bad.onnx" ] || [ -e "$OUT/bad.json" ] && fail "$name: wrote an output file"
    echo "ok   $name: $(head -1 "$OUT/err")"
}
# shellcheck disable=SC2086
expect_fail compare_no_labels "needs --labels" compare "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" \
    --calib "$FM/train-images-idx3-ubyte.gz" $NORM --json "$OUT/bad.json"
# shellcheck disable=SC2086
expect_fail compare_bad_policy "unknown policy 'int4'" compare "$MODEL" $DATA --policies fp32,int4 \
    --json "$OUT/bad.json"
"$PYTHON" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
plan = json.load(open(f"{out}/plan.json"))
plan["points"][1]["node"] = "/no/such/Conv"
json.dump(plan, open(f"{out}/plan_unknown.json", "w"))
open(f"{out}/plan_broken.json", "w").write(open(f"{out}/plan.json").read()[:200])
PY
expect_fail plan_unknown_node "plan_unknown.json: points\[1\]: no node named '/no/such/Conv'" \
    quantize "$MODEL" -o "$OUT/bad.onnx" --plan "$OUT/plan_unknown.json"
expect_fail plan_bad_json "plan_broken.json:.*not valid JSON" \
    quantize "$MODEL" -o "$OUT/bad.onnx" --plan "$OUT/plan_broken.json"

[ $fails -eq 0 ] && echo "compare: all checks pass" || exit 1
