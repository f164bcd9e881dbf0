#!/usr/bin/env bash
# Data-parallel training on this machine: images/s of `histocnn train` in 1 process and with
# --nproc 2 (each worker then gets half the cores), and the gradient all-reduce's share of the
# training time, as the trainer measures it. See docs/benchmarks.md, "Data-parallel training".
#
#   bench/distributed.sh [build-dir] [work-dir]
#
# Environment: EPOCHS (3), PATCHES_PER_PATIENT (120, 16 patients), IMAGE_SIZE (50), BATCH (32),
# CASES (the backbones to train: "simple_cnn mobilenet_v2").
set -euo pipefail

build=${1:-build}
work=${2:-$(mktemp -d)}
cli=$(realpath "$build/histocnn")
epochs=${EPOCHS:-3}
per_patient=${PATCHES_PER_PATIENT:-120}
size=${IMAGE_SIZE:-50}
batch=${BATCH:-32}
cases=${CASES:-simple_cnn mobilenet_v2}
export HISTOCNN_PROGRESS=0

mkdir -p "$work"
if [ ! -d "$work/data" ]; then
  "$cli" data synth "$work/data" --patients 16 --per-patient "$per_patient" --seed 5 >/dev/null
fi

# Mean images/s of the epochs after the first (history.csv, whole epochs: training and rank 0's validation).
rate() {
  awk -F, 'NR > 2 { s += $9; n++ } END { if (n) printf "%.0f", s / n; else print "n/a" }' "$1"
}
# Gradient all-reduce seconds over training seconds, summed over the epochs after the first.
share() {
  grep 'gradient all-reduce' "$1" | awk 'NR > 1 { for (i = 1; i <= NF; ++i) { if ($i == "all-reduce") r += $(i + 1);
    if ($i == "of") t += $(i + 1) } } END { if (t > 0) printf "%.1f %%", 100 * r / t; else print "n/a" }'
}

cores=$(nproc)
half=$(( cores / 2 > 0 ? cores / 2 : 1 ))
echo "machine: $cores cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| backbone | processes | threads each | img/s | vs. 1 process, $cores threads | all-reduce share of training |"
echo "|---|---|---|---|---|---|"
for backbone in $cases; do
  common=(train --data "$work/data" --out "$work/runs" --backbone "$backbone" --weights "" --unfreeze
          --image-size "$size" --epochs "$epochs" --batch-size "$batch" --train-fraction 0.8 --val-fraction 0.1
          --test-fraction 0.1 --stain-shift 0 --no-tensorboard --workers 1)
  rm -rf "$work/runs/$backbone"-*
  # One process with every core, one process with one thread (what each worker below gets on two
  # cores), and two workers.
  "$cli" "${common[@]}" --name "$backbone-1" --threads "$cores" >"$work/$backbone-1.log" 2>&1
  "$cli" "${common[@]}" --name "$backbone-1t" --threads "$half" >"$work/$backbone-1t.log" 2>&1
  "$cli" "${common[@]}" --name "$backbone-2" --nproc 2 >"$work/$backbone-2.log" 2>&1
  base=$(rate "$work/runs/$backbone-1/history.csv")
  for run in 1:1:$cores 1t:1:$half 2:2:$half; do
    IFS=: read -r tag procs threads <<<"$run"
    r=$(rate "$work/runs/$backbone-$tag/history.csv")
    ratio=$(awk -v a="$base" -v b="$r" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }')
    reduce=-
    [ "$procs" = 2 ] && reduce=$(share "$work/$backbone-2.log")
    echo "| $backbone | $procs | $threads | $r | $ratio | $reduce |"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "logs and run folders: $work"
