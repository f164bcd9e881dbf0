#!/usr/bin/env bash
# Configures and builds histocnn into ./build (or $HISTOCNN_BUILD_DIR), installing the Debian
# packages it needs first. The Python bindings are built against Debian's /usr/bin/python3, the
# interpreter that owns python3-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh ${HISTOCNN_DEPS_ARGS:-}
BUILD_DIR=${HISTOCNN_BUILD_DIR:-build}
PYTHON=${HISTOCNN_PYTHON:-/usr/bin/python3}
echo "build: Python bindings for $PYTHON ($("$PYTHON" --version 2>&1))"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PYTHON" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
