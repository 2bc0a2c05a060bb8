#!/bin/sh
# check_int8_agreement.sh QDEPLOY AGREEMENT MODEL: quantizes a trained
# Fashion-MNIST fixture (mixed policy, calibrated on the training images) and
# runs the QDQ model over the 10,000 test images on the engine's INT8 kernels
# and as written (float DQ -> op -> Q): Top-1 predictions must agree on at
# least 99.5% of the images, and logits differ by little against their scale.
set -u
QDEPLOY=$1
AGREEMENT=$2
MODEL=$3
FM=/usr/share/datasets/fashion-mnist
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
name=$(basename "$MODEL" .onnx)
"$QDEPLOY" quantize "$MODEL" -o "$WORK/q.onnx" --calib "$FM/train-images-idx3-ubyte.gz" \
    --calib-batches 8 --batch-size 32 --mean 0.2860 --std 0.3530 > "$WORK/out" 2>&1 || {
    echo "FAIL quantize $name: $(tail -1 "$WORK/out")"; exit 1; }
line=$("$AGREEMENT" "$WORK/q.onnx" "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" 10000) || {
    echo "FAIL $name: int8_agreement did not run"; exit 1; }
echo "     $name: $line"
echo "$line" | awk '{
    agree = $5; gsub(/[(%)]/, "", agree);
    if ($2 != 10000 || agree + 0 < 99.5 || $15 + 0 < 1) { print "FAIL agreement"; exit 1 }
    if ($11 + 0 > 0.1 * ($13 + 0)) { print "FAIL logits differ by more than 10% of their scale"; exit 1 }
    print "ok   INT8 and as-written Top-1 agree on " agree "% of the images"
}'
