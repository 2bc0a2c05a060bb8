#!/bin/sh
# check_bf16_agreement.sh AGREEMENT MODEL: runs a trained Fashion-MNIST
# fixture over the 10,000 test images with bfloat16 high precision and in
# float32: Top-1 predictions agree on at least 99.5% of the images, Top-1
# accuracy moves by at most 0.3 points, and logits differ by at most 5% of
# their scale (bf16 keeps 8 significant bits; accumulation stays float32).
# Exit 77 (skipped) on a CPU without AVX512-BF16.
set -u
AGREEMENT=$1
MODEL=$2
FM=/usr/share/datasets/fashion-mnist
name=$(basename "$MODEL" .onnx)
line=$("$AGREEMENT" --bf16 "$MODEL" "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" 10000)
rc=$?
[ $rc -eq 77 ] && { echo "skip $name: this CPU has no AVX512-BF16"; exit 77; }
[ $rc -eq 0 ] || { echo "FAIL $name: int8_agreement --bf16 did not run"; exit 1; }
echo "     $name: $line"
echo "$line" | awk '{
    agree = $5; gsub(/[(%)]/, "", agree);
    a = $7; gsub(/%/, "", a); b = $9; gsub(/%/, "", b);
    if ($2 != 10000 || agree + 0 < 99.5) { print "FAIL agreement"; exit 1 }
    if (a - b > 0.3 || b - a > 0.3) { print "FAIL Top-1 moved by more than 0.3 points"; exit 1 }
    if ($11 + 0 > 0.05 * ($13 + 0)) { print "FAIL logits differ by more than 5% of their scale"; exit 1 }
    print "ok   bf16 and fp32 Top-1 agree on " agree "% of the images (" a "% vs " b "%)"
}'
