#!/usr/bin/env bash
# Real-data benchmark of the foundation recipe: ImageNet MobileNetV2, frozen, plus the study's
# dense head, on the real IDC patches with a patient-level split. Prints the test metrics and the
# wall time of each run.
#
#   bench/idc_real_frozen_mobilenet.sh [IMAGE_SIZE] [BALANCE_PER_CLASS] [EPOCHS]
#
# Data: $HISTOCNN_DATA_DIR (default ../shared/data/idc_real); weights: $HISTOCNN_WEIGHTS_DIR
# (default ../shared/weights). Runs go to bench-runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-224}
balance=${2:-0}
epochs=${3:-20}
data=${HISTOCNN_DATA_DIR:-../shared/data/idc_real}
export HISTOCNN_WEIGHTS_DIR=${HISTOCNN_WEIGHTS_DIR:-../shared/weights}
name="mobilenet_v2-frozen-${size}px-bal${balance}-e${epochs}"
start=$(date +%s)
build/histocnn train --data "$data" --backbone mobilenet_v2 --weights imagenet --image-size "$size" \
  --balance "$balance" --epochs "$epochs" --optimizer rmsprop --lr 1e-3 --seed 42 \
  --out bench-runs --name "$name" > "bench-runs-$name.log" 2>&1 || { cat "bench-runs-$name.log"; exit 1; }
end=$(date +%s)
/usr/bin/python3 - "bench-runs/$name/metrics.json" "$((end - start))" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t = m["test"]
print(f"test: n={t['n']} ROC-AUC={t['roc_auc']:.4f} accuracy={t['accuracy']:.4f} "
      f"precision={t['precision']:.4f} recall={t['recall']:.4f} F1={t['f1']:.4f}; "
      f"best epoch {m['best_epoch']}, feature pass {m['feature_cache_seconds']:.0f} s, wall {sys.argv[2]} s")
PY
