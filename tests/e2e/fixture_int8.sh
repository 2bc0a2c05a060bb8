# Sourced by the e2e checks that quantize a trained Fashion-MNIST fixture and
# check its INT8 kernels against the QDQ model run as written (one copy of
# the calibration settings and of the agreement thresholds).
FM=/usr/share/datasets/fashion-mnist

# quantize_fixture QDEPLOY MODEL OUT WORK: mixed policy, calibrated on the
# training images; prints FAIL and exits 1 when quantize fails.
quantize_fixture() {
    "$1" quantize "$2" -o "$3" --calib "$FM/train-images-idx3-ubyte.gz" \
        --calib-batches 8 --batch-size 32 --mean 0.2860 --std 0.3530 > "$4/out" 2>&1 || {
        echo "FAIL quantize $(basename "$2" .onnx): $(tail -1 "$4/out")"; exit 1; }
}

# check_agreement AGREEMENT QDQ_MODEL LABEL: runs the QDQ model over the
# 10,000 test images on the INT8 kernels and as written: Top-1 predictions
# agree on at least 99.5% of the images and logits differ by at most 10% of
# their scale; exits 1 otherwise.
check_agreement() {
    line=$("$1" "$2" "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" 10000) || {
        echo "FAIL $3: int8_agreement did not run"; exit 1; }
    echo "     $3: $line"
    echo "$line" | awk '{
        agree = $5; gsub(/[(%)]/, "", agree);
        if ($2 != 10000 || agree + 0 < 99.5 || $15 + 0 < 1) { print "FAIL agreement"; exit 1 }
        if ($11 + 0 > 0.1 * ($13 + 0)) { print "FAIL logits differ by more than 10% of their scale"; exit 1 }
        print "ok   INT8 and as-written Top-1 agree on " agree "% of the images"
    }' || exit 1
}
