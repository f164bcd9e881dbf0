#!/usr/bin/env bash
# Builds histocnn and runs every test: the Catch2 suite (fast and [slow]), pytest, and a
# find_package() build of an example against an installed copy. Real data and weights are used
# when ../shared (or HISTOCNN_DATA_DIR / HISTOCNN_WEIGHTS_DIR) provides them, skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
HISTOCNN_DEPS_ARGS=--test bash scripts/build.sh
BUILD_DIR=${HISTOCNN_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 1500
