#!/usr/bin/env bash
# `make demo`: the whole workflow on a generated scene, with the real CLI:
#   demo-scene -> convert -> train (multiscale) -> eval --scale 4 --save-image -> render spheric
# Usage: scripts/demo.sh [OUT]   (default OUT=out)
# Environment: THREADS (torch CPU threads for eval/render, default 1: on a small busy machine
# one thread runs this small model fastest; training takes cpu_threads from configs/demo.yaml),
# FRAMES (video frames, default 48).
# Re-running is safe: the scene is regenerated identically, training continues from its last
# checkpoint (or does nothing when it is finished), eval and render replace their outputs.
set -euo pipefail
OUT=${1:-out}
THREADS=${THREADS:-1}
FRAMES=${FRAMES:-48}
SCENE=$OUT/demo/blender/demo
MULTI=$OUT/demo/multiscale
RUN=$OUT/demo-multiscale
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
start=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "1/5 generate the procedural scene (64x64, 40 train / 8 val / 8 test views)"
mipnerf demo-scene "$SCENE" --overwrite
step "2/5 convert it to the multiscale format (full, 1/2, 1/4, 1/8)"
mipnerf convert "$SCENE" "$MULTI" --overwrite
step "3/5 train mip-NeRF on all four scales (configs/demo.yaml)"
status=0
mipnerf train --multiscale --config demo --data "$MULTI/demo" --out-dir "$OUT" --exp-name demo-multiscale || status=$?
if [ "$status" != 0 ]; then
    if [ "$status" = 1 ]; then
        echo "hint: if the message above says the model settings differ (configs/demo.yaml changed since" >&2
        echo "      the last demo), remove the old run first: rm -rf $RUN" >&2
    fi
    exit "$status"
fi
step "4/5 evaluate on the 8 test views at every scale"
mipnerf eval "$RUN" --scale 4 --save-image --cpu-threads "$THREADS"
step "5/5 render a 360 degree video"
mipnerf render "$RUN" --path spheric --frames "$FRAMES" --fps 24 --cpu-threads "$THREADS"

elapsed=$(( $(date +%s) - start ))
results=$(ls -td "$RUN"/eval/*/ | sed -n 1p)results.json
step "done in ${elapsed}s"
echo "run folder:   $RUN   (config.yaml, metrics.jsonl, ckpt/)"
echo "results:      $results"
echo "test images:  $(dirname "$results")/images/   (*_rgb.png rendered, *_gt.png ground truth)"
echo "video:        $RUN/render/spheric/rgb.mp4   (and depth.mp4, acc.mp4)"
echo
"$PYTHON" "$HERE/results_table.py" "$results"
