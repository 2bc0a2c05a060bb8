#!/bin/sh
# Installs the Debian packages qdeploy builds, tests and benchmarks with.
# Does nothing when every package is already present. Run as root.
set -eu

PACKAGES="
build-essential cmake pkg-config git
libprotobuf-c-dev protobuf-c-compiler
libonnx-dev libonnx-testdata
libdnnl-dev
libjpeg62-turbo-dev libpng-dev zlib1g-dev
libjson-c-dev
dataset-fashion-mnist
python3 python3-torch python3-torchvision python3-onnx python3-numpy
libcmocka-dev
clang libclang-rt-14-dev
valgrind
chromium
"

# Node.js and npm run the test peer (onnxruntime-node from npm); machines
# that ship their own Node.js keep it.
if ! command -v npm > /dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
