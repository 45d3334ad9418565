#!/usr/bin/env bash
# `make demo-llff`: the LLFF (forward-facing) workflow on a generated scene, with the real CLI:
#   demo-scene --kind forward-facing -> train (configs/llff-cpu.yaml) -> eval -> render --path spiral
# Usage: scripts/demo_llff.sh [OUT]   (default OUT=out)
# Environment: STEPS (training steps, default from llff-cpu.yaml), FRAMES (spiral frames, default 120).
set -euo pipefail
OUT=${1:-out}
FRAMES=${FRAMES:-120}
SCENE=$OUT/demo-llff/scene
RUN=$OUT/llff-cpu
start=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "1/4 generate the forward-facing scene (12 views of 64x48, images_2/ and images_4/)"
mipnerf demo-scene "$SCENE" --kind forward-facing --size 64 --overwrite
step "2/4 train mip-NeRF in NDC (configs/llff-cpu.yaml: images_4/, cylinders, density noise 1)"
mipnerf train --config llff-cpu --data "$SCENE" --out-dir "$OUT" --exp-name llff-cpu ${STEPS:+--max-steps "$STEPS"}
step "3/4 score the held-out views (every 8th image; PSNR/SSIM, black background)"
mipnerf eval "$RUN" --save-image --cpu-threads 1
step "4/4 render the reference's 2-turn spiral"
mipnerf render "$RUN" --path spiral --frames "$FRAMES" --format gif --cpu-threads 1
step "done: $RUN/eval/ and $RUN/render/spiral/"
