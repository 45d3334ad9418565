#!/usr/bin/env bash
# The lego photo capture trained on recovered vs true poses, and multiscale vs single-scale
# (README "Your own scenes"). About 45 min on 2 CPU cores (4 trainings of 2000 steps side by side).
#   bash benchmarks/capture_lego_training.sh [LEGO_DIR] [OUT]
set -euo pipefail
LEGO=${1:-../shared/data/lego}
OUT=${2:-out/capture-lego}
STEPS=${STEPS:-2000}
mkdir -p "$OUT"
# 1. the photos (100 train views on white, 400 px JPEG) and their conversion, multiscale included
[ -d "$OUT/photos" ] || python benchmarks/capture_lego.py --lego "$LEGO" --out "$OUT/bench" --keep-photos "$OUT/photos"
[ -d "$OUT/scene-ms" ] || mipnerf convert "$OUT/photos" "$OUT/scene-ms" --multiscale
# 2. the same capture read single-scale (no metadata.json), and its true-pose twin
mkdir -p "$OUT/scene"
for f in images images_2 images_4 images_8 poses_bounds.npy transforms.json; do
  ln -sfn "$(realpath "$OUT/scene-ms/$f")" "$OUT/scene/$f"
done
[ -d "$OUT/twin" ] || python benchmarks/capture_true_twin.py "$OUT/scene" "$LEGO" "$OUT/twin"
# 3. four trainings with the lego-cpu settings
train() { mipnerf train --config lego-cpu --max-steps "$STEPS" --out-dir "$OUT/runs" --no-progress "$@"; }
train --data "$OUT/scene" --factor 4 --exp-name recovered-100px > "$OUT/train-recovered.log" 2>&1 &
train --data "$OUT/twin" --factor 4 --exp-name true-100px > "$OUT/train-true.log" 2>&1 &
wait
train --multiscale --data "$OUT/scene-ms" --exp-name recovered-multiscale > "$OUT/train-ms.log" 2>&1 &
train --data "$OUT/scene" --exp-name recovered-singlescale-400px > "$OUT/train-ss.log" 2>&1 &
wait
# 4. scores: the same 13 held-out views (every 8th), and every scale of the multiscale test split
mipnerf eval "$OUT/runs/recovered-100px"
mipnerf eval "$OUT/runs/true-100px"
python benchmarks/score_on_multiscale.py "$OUT/runs/recovered-multiscale" "$OUT/scene-ms" --limit 3
python benchmarks/score_on_multiscale.py "$OUT/runs/recovered-singlescale-400px" "$OUT/scene-ms" --single "$OUT/scene" --limit 3
