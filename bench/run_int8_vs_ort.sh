#!/usr/bin/env bash
# qdeploy INT8 (mixed, uniform, x86-target mixed) vs qdeploy FP32 and onnxruntime, interleaved; see bench/README.md.
#
#   bench/run_int8_vs_ort.sh [--models "resnet50 convnext_tiny"] [--threads 2]
#       [--rounds 5] [--iters 10] [--warmup 3] [--cache DIR] [--qdeploy PATH]
#       [--results FILE | --no-results]
#
# Installs the npm peer (onnxruntime-node) if node_modules lacks it, builds
# build/qdeploy if it is missing and no --qdeploy is given (it does not rebuild a
# stale one), exports the models with Debian's python3-torch into the cache
# (default .cache/torchvision), then runs bench/int8_vs_ort.js, which makes the
# QDQ models (NAME.mixed.onnx, NAME.uniform.onnx: tensorrt target; NAME.x86.onnx:
# --policy mixed --target x86) in the cache when they are missing or stale, prints
# the tables and writes them to bench/RESULTS.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MODELS="resnet50 convnext_tiny convnext_base convnext_large vit_b_16"
CACHE=.cache/torchvision
QDEPLOY=
ARGS=()
COMMAND="bench/run_int8_vs_ort.sh"
for a in "$@"; do
    case $a in
        *[!A-Za-z0-9_@%+=:,./-]*|'') COMMAND+=" '${a//\'/\'\\\'\'}'" ;;
        *) COMMAND+=" $a" ;;
    esac
done

usage() {
    sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        --models) [ $# -ge 2 ] || usage; MODELS=$2; shift 2 ;;
        --cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
        --qdeploy) [ $# -ge 2 ] || usage; QDEPLOY=$2; ARGS+=("$1" "$2"); shift 2 ;;
        --threads|--rounds|--iters|--warmup|--results)
            [ $# -ge 2 ] || usage; ARGS+=("$1" "$2"); shift 2 ;;
        --no-results) ARGS+=("$1"); shift ;;
        -h|--help) usage ;;
        *) echo "run_int8_vs_ort.sh: unknown argument $1" >&2; usage ;;
    esac
done
MODELS=${MODELS//,/ }

if [ ! -f node_modules/onnxruntime-node/package.json ]; then
    echo "== npm ci --ignore-scripts (onnxruntime-node)"
    npm ci --ignore-scripts
fi

if [ -z "$QDEPLOY" ] && [ ! -x build/qdeploy ]; then
    echo "== building qdeploy"
    cmake -S . -B build
    cmake --build build -j2
fi

# shellcheck disable=SC2086  # MODELS is a word list
/usr/bin/python3 tools/fixtures/export_torchvision.py --out "$CACHE" $MODELS

QD_BENCH_COMMAND=$COMMAND exec node bench/int8_vs_ort.js --cache "$CACHE" \
    --models "$MODELS" ${ARGS[@]+"${ARGS[@]}"}
