#!/usr/bin/env bash
# `make reproduce-lego`: the paper's lego runs with the reference schedule (configs/lego.yaml,
# configs/lego-multiscale.yaml: 4096 rays per step, lr 5e-4 -> 5e-6, 1M steps, 8x256 MLP,
# 128 + 128 samples). Days on one GPU; not a CPU job.
#   convert -> train single-scale -> train multiscale -> eval --scale 1 / --scale 4 --save-image
#   -> render spheric (both runs)
# Usage: scripts/reproduce_lego.sh [LEGO_DIR] [OUT]   (defaults ../shared/data/lego, out)
# Environment: STEPS (stop both trainings at this step, e.g. 300000 as mipnerf_pl reports;
#   default: the configs' 1,000,000), DEVICE (auto|cuda|cpu, default auto).
# Interrupt at any time (Ctrl+C saves); re-running continues both runs where they stopped.
set -euo pipefail
DATA=${1:-../shared/data/lego}
OUT=${2:-out}
DEVICE=${DEVICE:-auto}
MULTI=$OUT/data/multiscale
start=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

if [ ! -f "$DATA/transforms_train.json" ]; then
    echo "error: $DATA is not a Blender scene (no transforms_train.json); pass DATA=path/to/nerf_synthetic/lego" >&2
    exit 1
fi
name=$(basename "$(cd "$DATA" && pwd)")

step "1/5 convert $DATA to the multiscale format"
if [ -f "$MULTI/$name/metadata.json" ]; then
    echo "already there: $MULTI/$name"
else
    mipnerf convert "$DATA" "$MULTI"
fi
step "2/5 train single-scale (configs/lego.yaml)"
mipnerf train --config lego --data "$DATA" --out-dir "$OUT" --exp-name "$name" --device "$DEVICE" ${STEPS:+--max-steps "$STEPS"}
step "3/5 train multiscale (configs/lego-multiscale.yaml)"
mipnerf train --multiscale --config lego-multiscale --data "$MULTI/$name" --out-dir "$OUT" --exp-name "$name-multiscale" \
    --device "$DEVICE" ${STEPS:+--max-steps "$STEPS"}
step "4/5 evaluate: single-scale at full resolution, multiscale at all four scales"
mipnerf eval "$OUT/$name" --scale 1 --device "$DEVICE"
mipnerf eval "$OUT/$name-multiscale" --scale 4 --save-image --device "$DEVICE"
step "5/5 render 360 degree videos"
mipnerf render "$OUT/$name" --path spheric --device "$DEVICE"
mipnerf render "$OUT/$name-multiscale" --path spheric --device "$DEVICE"
mipnerf plot "$OUT/$name"
mipnerf plot "$OUT/$name-multiscale"
step "done in $(( $(date +%s) - start ))s"
for run in "$OUT/$name" "$OUT/$name-multiscale"; do
    echo "$run: $(ls -td "$run"/eval/*/ | sed -n 1p)results.json, $run/render/spheric/rgb.mp4, $run/quality.png"
done
