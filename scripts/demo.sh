#!/usr/bin/env bash
# The main job: builds histocnn, generates synthetic H&E patches, trains, evaluates and reports.
# Uses ImageNet MobileNetV2 weights when HISTOCNN_WEIGHTS_DIR (or ../shared/weights) has them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${HISTOCNN_BUILD_DIR:-build}
if [ -z "${HISTOCNN_WEIGHTS_DIR:-}" ] && [ -d ../shared/weights ]; then
  export HISTOCNN_WEIGHTS_DIR="$(cd ../shared/weights && pwd)"
fi
exec "$BUILD_DIR/histocnn" demo "$@"
