#!/usr/bin/env bash
# `make compare`: why mip-NeRF exists, measured. Trains mip-NeRF and the NeRF ablation
# (--no-integration: point samples, plain positional encoding) on the multiscale demo scene
# with the same config, steps and seed, evaluates both at all four scales, and writes
#   OUT/compare/compare.md        PSNR/SSIM per scale and averaged, NeRF next to mip-NeRF
#   OUT/compare/compare_1-8.png   ground truth | NeRF | mip-NeRF at 1/8 scale, enlarged
# Usage: scripts/compare.sh [OUT]   (default OUT=out)
# Environment: STEPS (training steps of each model, default 3000), SEED (default 0),
#   PARALLEL=1 trains both models at once (faster on a machine with spare cores),
#   THREADS (torch threads of eval, default 1).
# Re-running continues unfinished runs and re-evaluates; delete OUT/compare to start over.
set -euo pipefail
OUT=${1:-out}
STEPS=${STEPS:-3000}
SEED=${SEED:-0}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-0}
ROOT=$OUT/compare
SCENE=$ROOT/blender/demo
MULTI=$ROOT/multiscale
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
start=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

train() {  # name, extra flags...
    local name=$1; shift
    mipnerf train --multiscale --config demo --data "$MULTI/demo" --out-dir "$ROOT" --exp-name "$name" \
        --max-steps "$STEPS" --check-interval "$(( STEPS / 4 ))" --seed "$SEED" --no-progress "$@"
}

step "1/4 the multiscale demo scene"
mipnerf demo-scene "$SCENE" --overwrite
mipnerf convert "$SCENE" "$MULTI" --overwrite

step "2/4 train mip-NeRF and NeRF ($STEPS steps each, seed $SEED)"
if [ "$PARALLEL" = 1 ]; then
    train mip-nerf > "$ROOT/mip-nerf.log" 2>&1 &
    mip=$!
    train nerf --no-integration > "$ROOT/nerf.log" 2>&1 &
    nerf=$!
    status=0
    wait "$mip" || status=$?
    wait "$nerf" || status=$?
    tail -n 3 "$ROOT/mip-nerf.log" "$ROOT/nerf.log"
    [ "$status" = 0 ] || { echo "training failed; see $ROOT/*.log" >&2; exit "$status"; }
else
    train mip-nerf
    train nerf --no-integration
fi

step "3/4 evaluate both at all four scales"
mipnerf eval "$ROOT/mip-nerf" --scale 4 --save-image --cpu-threads "$THREADS" --no-progress
mipnerf eval "$ROOT/nerf" --scale 4 --save-image --cpu-threads "$THREADS" --no-progress

step "4/4 the table and the 1/8-scale image"
"$PYTHON" "$HERE/compare_report.py" \
    --mip "$ROOT/mip-nerf/eval/$STEPS" --nerf "$ROOT/nerf/eval/$STEPS" \
    --markdown "$ROOT/compare.md" --image "$ROOT/compare_1-8.png"
step "done in $(( $(date +%s) - start ))s"
