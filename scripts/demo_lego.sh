#!/usr/bin/env bash
# `make demo-lego`: the demo workflow on the real lego scene, sized for a CPU.
#   lego shrunk 4x (200 px) -> convert (200, 100, 50, 25 px) -> train --multiscale
#   --config lego-cpu -> eval --scale 4 --save-image -> render spheric (100 px) -> plot
# Usage: scripts/demo_lego.sh [LEGO_DIR] [OUT]   (defaults ../shared/data/lego, out)
# Environment: FACTOR (shrink factor, default 4), TEST_VIEWS (test views kept, spread over
#   the ring, default 8), STEPS (training steps, default: the config's 5000), THREADS
#   (torch threads of eval/render, default 1), FRAMES (video frames, default 40).
# Re-running continues the training from its last checkpoint.
set -euo pipefail
DATA=${1:-../shared/data/lego}
OUT=${2:-out}
FACTOR=${FACTOR:-4}
TEST_VIEWS=${TEST_VIEWS:-8}
THREADS=${THREADS:-1}
FRAMES=${FRAMES:-40}
ROOT=$OUT/lego-cpu
SMALL=$ROOT/blender/lego
RUN=$OUT/lego-cpu-multiscale
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
start=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

if [ ! -f "$DATA/transforms_train.json" ]; then
    echo "error: $DATA is not a Blender scene (no transforms_train.json); pass DATA=path/to/nerf_synthetic/lego" >&2
    exit 1
fi

stamp="factor=$FACTOR test_views=$TEST_VIEWS source=$(cd "$DATA" && pwd)"
step "1/6 lego at 1/$FACTOR, $TEST_VIEWS test views"
if [ -f "$ROOT/.made-with" ] && [ "$(cat "$ROOT/.made-with")" = "$stamp" ] && [ -f "$SMALL/transforms_train.json" ]; then
    echo "already there: $SMALL"
else
    "$PYTHON" "$HERE/downscale_blender.py" "$DATA" "$SMALL" --factor "$FACTOR" --test-views "$TEST_VIEWS"
    printf '%s' "$stamp" > "$ROOT/.made-with"
fi
step "2/6 convert to the multiscale format"
mipnerf convert "$SMALL" "$ROOT/multiscale" --overwrite
step "3/6 train mip-NeRF on all four scales (configs/lego-cpu.yaml)"
mipnerf train --multiscale --config lego-cpu --data "$ROOT/multiscale/lego" --out-dir "$OUT" \
    --exp-name lego-cpu-multiscale ${STEPS:+--max-steps "$STEPS"}
step "4/6 evaluate on the $TEST_VIEWS test views at every scale"
mipnerf eval "$RUN" --scale 4 --save-image --cpu-threads "$THREADS"
step "5/6 render a 360 degree video at half the training resolution"
mipnerf render "$RUN" --path spheric --frames "$FRAMES" --fps 20 --downscale 2 --cpu-threads "$THREADS"
step "6/6 plot the quality curve"
mipnerf plot "$RUN"

results=$(ls -td "$RUN"/eval/*/ | sed -n 1p)results.json
step "done in $(( $(date +%s) - start ))s"
echo "run folder:   $RUN   (config.yaml, metrics.jsonl, ckpt/, quality.png)"
echo "results:      $results"
echo "video:        $RUN/render/spheric/rgb.mp4"
echo
"$PYTHON" "$HERE/results_table.py" "$results"
