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
. "$(dirname "$0")/fixture_int8.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
quantize_fixture "$QDEPLOY" "$MODEL" "$WORK/q.onnx" "$WORK"
check_agreement "$AGREEMENT" "$WORK/q.onnx" "$(basename "$MODEL" .onnx)"
