#!/usr/bin/env bash
# The first run on any machine with a GPU: one script, under 10 minutes, everything it
# measures written under $OUT (default out/gpu_check), a summary in $OUT/summary.md.
#
#   benchmarks/gpu_check.sh                 # on the GPU (--device cuda)
#   benchmarks/gpu_check.sh --device cpu    # dry run with tiny sizes (tests/project/test_gpu_check.py)
#
# What it does, each part with its own time limit, its log and exit status in $OUT:
#   1. env.txt        GPU, driver, torch, the runtime policy each device gets
#   2. tests.txt      MIPNERF_TEST_DEVICE=cuda python -m pytest -q -m "not slow"
#   3. bench_*.json   mipnerf bench --config paper --batch 4096 (bf16 + TF32, the default), and
#                     anchor_4096.json: the anchor's model on the same GPU (needs MIRROR)
#   4. precision_*.json  the training step with bf16 on/off x TF32 on/off, and --compile
#   5. lego/          a multiscale lego training of a few minutes (metrics.jsonl, quality.png,
#                     its validation curve), then eval of two test views at every scale
#   6. fast/          the grid model (--config fast) on full-size multiscale lego (800, 400,
#                     200, 100 px): FAST_MINUTES of training, then eval of every test view at 4 scales
# Environment: OUT, PYTHON (python3), DATA (the lego Blender scene, default
#   ../shared/data/lego), MIRROR (git dir of hjxwhy/mipnerf_pl; without it the anchor is
#   skipped), FACTOR (lego shrink factor, default 2: 400 px), TRAIN_SECONDS (default 150),
#   FAST_MINUTES (default 15; 0 skips part 6), FAST_STEPS (its max_steps, default 30000),
#   FAST_EVAL_LIMIT (test views per scale in its eval, default 0: all).
# Typical time on one GPU: tests ~2-3 min, benches ~2 min, compile ~1-2 min, lego ~4 min,
# fast ~FAST_MINUTES + 3 min (convert, eval): ~25 min in all with the defaults.
# Run from the repository root. Parts that fail are recorded and the next part runs.
set -uo pipefail

DEVICE=cuda
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --device=*) DEVICE=${1#--device=}; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (use --device cuda|cpu)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "error: --device $DEVICE: choose cuda or cpu" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
MIPNERF=("$PYTHON" -m mipnerf_cli)
STATUS=$OUT/status.tsv
: > "$STATUS"
start=$(date +%s)

if [ "$DEVICE" = cuda ]; then
    # The real sizes: the paper model at 4096 rays, lego at 1/FACTOR, a few minutes of training.
    BENCH_CONFIG=paper; BATCH=4096; CHUNK=16384; BENCH_STEPS=10; WARMUP=3
    DATA=${DATA:-$ROOT/../shared/data/lego}; FACTOR=${FACTOR:-2}; TEST_VIEWS=8
    TRAIN_SECONDS=${TRAIN_SECONDS:-150}; TRAIN_STEPS=20000; CHECK=500; LOG=50; TRAIN_BATCH=4096; MODEL=""
    # (the dry run of this script is a test of its own: not again here)
    TESTS=(-m "not slow" --ignore=tests/project/test_gpu_check.py); TESTS_LIMIT=200; LIMIT=180; PEAK=--peak; COMPILE=1
    # the grid model: full-size lego, FAST_MINUTES of training
    FAST_MINUTES=${FAST_MINUTES:-15}; FAST_STEPS=${FAST_STEPS:-30000}; FAST_EVAL_LIMIT=${FAST_EVAL_LIMIT:-0}; FAST_FLAGS=()
else
    # Dry run: the same commands at toy sizes on the CPU, so that the script cannot rot.
    BENCH_CONFIG=$OUT/tiny.yaml; BATCH=32; CHUNK=64; BENCH_STEPS=1; WARMUP=0
    DATA=${DATA:-$ROOT/tests/golden/convert/input/tiny}; FACTOR=1; TEST_VIEWS=0
    TRAIN_SECONDS=${TRAIN_SECONDS:-120}; TRAIN_STEPS=4; CHECK=2; LOG=1; TRAIN_BATCH=64
    MODEL=$'model:\n  num_samples: 4\n  netdepth: 2\n  netwidth: 16\n  netwidth_condition: 8\n  max_deg_point: 4\n  deg_view: 2\n'
    printf '%s' "$MODEL" > "$BENCH_CONFIG"
    TESTS=(tests/core/test_losses.py); TESTS_LIMIT=120; LIMIT=120; PEAK=--no-peak
    COMPILE=0  # inductor takes minutes on a CPU; tests/commands/test_bench.py covers --compile's flags
    FAST_MINUTES=${FAST_MINUTES:-2}; FAST_STEPS=4; FAST_EVAL_LIMIT=1; FAST_FLAGS=(--batch-size 64 --check-interval 2)
fi

# part NAME LIMIT_S COMMAND...: run it under a time limit, stdout+stderr to NAME.log, status recorded.
part() {
    local name=$1 limit=$2; shift 2
    local tic=$(date +%s)
    printf '== %s (limit %ss, at %ss)\n' "$name" "$limit" "$(( tic - start ))"
    timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%ss\n' "$name" "$rc" "$(( $(date +%s) - tic ))" >> "$STATUS"
    [ "$rc" = 0 ] || { echo "   $name: exit $rc (see $OUT/$name.log)"; tail -n 5 "$OUT/$name.log" | sed 's/^/   | /'; }
    return 0
}
# json NAME LIMIT_S COMMAND...: as part, stdout alone to NAME.json.
json() {
    local name=$1 limit=$2; shift 2
    part "$name" "$limit" bash -c '"$@" > "$0"' "$OUT/$name.json" "$@"
}

# 1. the machine and the policy each command resolves on it
part env 60 bash -c '
    (nvidia-smi || echo "no nvidia-smi") ; echo
    "$0" -c "
import torch
from mipnerf_cli import runtime
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), \"capability\", torch.cuda.get_device_capability(0))
for name in (\"cpu\", \"cuda\"):
    try:
        print(name, runtime.resolve(name).describe())
    except Exception as error:
        print(name, \"->\", error)
"' "$PYTHON"
cp "$OUT/env.log" "$OUT/env.txt"

# 2. the test suite with CUDA visible (tests/training/test_distributed.py runs on 2 GPUs when there are)
part tests "$TESTS_LIMIT" env MIPNERF_TEST_DEVICE="$DEVICE" "$PYTHON" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
cp "$OUT/tests.log" "$OUT/tests.txt"

# 3. ours and the anchor at the same batch on the same device
json "bench_paper_$BATCH" "$LIMIT" "${MIPNERF[@]}" bench --device "$DEVICE" --config "$BENCH_CONFIG" --batch "$BATCH" \
    --chunk "$CHUNK" --steps "$BENCH_STEPS" --warmup "$WARMUP" "$PEAK" --json
if [ -n "${MIRROR:-}" ]; then
    json "anchor_$BATCH" "$LIMIT" "$PYTHON" "$HERE/anchor_device.py" --mirror "$MIRROR" --device "$DEVICE" \
        --batch "$BATCH" --chunk "$CHUNK" --steps "$BENCH_STEPS"
else
    printf 'anchor_%s\tskipped (set MIRROR to the git dir of hjxwhy/mipnerf_pl)\t0s\n' "$BATCH" >> "$STATUS"
fi

# 4. precision: bf16 autocast and TF32 each on and off (training step), then torch.compile
for mp in mixed-precision fp32; do
    for tf in tf32 no-tf32; do
        json "precision_${mp}_${tf}" "$LIMIT" "${MIPNERF[@]}" bench --device "$DEVICE" --config "$BENCH_CONFIG" --what train \
            --batch "$BATCH" --steps "$BENCH_STEPS" --warmup "$WARMUP" "--$mp" "--$tf" "$PEAK" --json
    done
done
if [ "$COMPILE" = 1 ]; then
    json precision_compile "$LIMIT" "${MIPNERF[@]}" bench --device "$DEVICE" --config "$BENCH_CONFIG" --what train \
        --batch "$BATCH" --steps "$BENCH_STEPS" --warmup "$(( WARMUP + 2 ))" --compile --no-peak --json
else
    printf 'precision_compile\tskipped (dry run)\t0s\n' >> "$STATUS"
fi

# 5. lego: shrink, convert, train a few minutes (SIGTERM at the limit saves and stops), plot, eval
LEGO=$OUT/lego
mkdir -p "$LEGO"
if [ -f "$DATA/transforms_train.json" ]; then
    SCENE=$DATA
    if [ "$FACTOR" != 1 ]; then
        SCENE=$LEGO/blender/lego
        part lego_downscale "$LIMIT" "$PYTHON" "$ROOT/scripts/downscale_blender.py" "$DATA" "$SCENE" --factor "$FACTOR" \
            --test-views "$TEST_VIEWS"
    fi
    part lego_convert "$LIMIT" "${MIPNERF[@]}" convert "$SCENE" "$LEGO/multiscale" --overwrite
    MULTI=$(dirname "$(ls -d "$LEGO"/multiscale/*/metadata.json | head -n 1)")
    {
        printf 'batch_size: %s\nlr_init: 2.0e-3\nlr_final: 5.0e-5\nlr_delay_steps: 200\nlr_delay_mult: 0.01\n' "$TRAIN_BATCH"
        printf 'max_steps: %s\ncheck_interval: %s\nlog_interval: %s\nval_views: 2\ntensorboard: false\n' "$TRAIN_STEPS" "$CHECK" "$LOG"
        printf '%s' "$MODEL"
    } > "$LEGO/train.yaml"
    rm -rf "$LEGO/runs"
    # The time limit is the training budget: at TRAIN_SECONDS the trainer gets SIGTERM, saves and stops (exit 143).
    part lego_train $(( TRAIN_SECONDS + 60 )) bash -c 'timeout --signal=TERM "$0" "$@"; rc=$?; [ $rc = 143 ] && rc=0; exit $rc' \
        "$TRAIN_SECONDS" "${MIPNERF[@]}" train --multiscale --config "$LEGO/train.yaml" --data "$MULTI" --device "$DEVICE" \
        --out-dir "$LEGO/runs" --exp-name lego --no-progress
    RUN=$LEGO/runs/lego
    cp "$RUN/metrics.jsonl" "$LEGO/metrics.jsonl" 2>/dev/null
    part lego_plot 120 "${MIPNERF[@]}" plot "$RUN" --out "$LEGO/quality.png"
    part lego_eval "$LIMIT" "${MIPNERF[@]}" eval "$RUN" --device "$DEVICE" --scale 4 --limit 2 --no-progress \
        --out "$LEGO/eval"
else
    printf 'lego\tskipped (no Blender scene at %s; set DATA)\t0s\n' "$DATA" >> "$STATUS"
fi

# 6. the grid model on full-size multiscale lego: convert (the dry run reuses part 5's tiny
#    multiscale scene), train FAST_MINUTES (--max-minutes: it saves and stops), plot, eval at 4 scales
FAST=$OUT/fast
if [ "$FAST_MINUTES" = 0 ]; then
    printf 'fast\tskipped (FAST_MINUTES=0)\t0s\n' >> "$STATUS"
elif [ -f "$DATA/transforms_train.json" ]; then
    mkdir -p "$FAST"
    if [ "$DEVICE" = cuda ]; then
        part fast_convert "$LIMIT" "${MIPNERF[@]}" convert "$DATA" "$FAST/multiscale" --overwrite
        FAST_DATA=$(dirname "$(ls -d "$FAST"/multiscale/*/metadata.json | head -n 1)")
    else
        FAST_DATA=$MULTI
    fi
    rm -rf "$FAST/runs"
    part fast_train $(( FAST_MINUTES * 60 + 300 )) "${MIPNERF[@]}" train --multiscale --config fast --data "$FAST_DATA" \
        --device "$DEVICE" --max-minutes "$FAST_MINUTES" --max-steps "$FAST_STEPS" "${FAST_FLAGS[@]}" \
        --out-dir "$FAST/runs" --exp-name fast --no-progress
    FAST_RUN=$FAST/runs/fast
    cp "$FAST_RUN/metrics.jsonl" "$FAST/metrics.jsonl" 2>/dev/null
    part fast_plot 120 "${MIPNERF[@]}" plot "$FAST_RUN" --out "$FAST/quality.png"
    FAST_LIMIT=()
    [ "$FAST_EVAL_LIMIT" = 0 ] || FAST_LIMIT=(--limit "$FAST_EVAL_LIMIT")
    part fast_eval 900 "${MIPNERF[@]}" eval "$FAST_RUN" --device "$DEVICE" --scale 4 "${FAST_LIMIT[@]}" --no-progress \
        --out "$FAST/eval"
else
    printf 'fast\tskipped (no Blender scene at %s; set DATA)\t0s\n' "$DATA" >> "$STATUS"
fi

# summary.md: every part's status and the figures, from the files above
"$PYTHON" - "$OUT" "$DEVICE" "$(( $(date +%s) - start ))" > "$OUT/summary.md" <<'PY'
import json, sys
from pathlib import Path

out, device, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"# gpu_check ({device}, {seconds} s)\n")
print("| part | exit | time |\n|---|---|---|")
for line in (out / "status.tsv").read_text().splitlines():
    print("| " + " | ".join(line.split("\t")) + " |")

def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None

print("\n| run | train rays/s | train MFU | render rays/s | render MFU |\n|---|---|---|---|---|")
for path in sorted(out.glob("*.json")):
    data = load(path.name)
    if not data:
        continue
    if "train_rays_per_s" in data:  # the anchor
        print(f"| {path.stem} | {data['train_rays_per_s']:.0f} | | {data['render_rays_per_s']:.0f} | |")
        continue
    cells = []
    for phase in ("train", "render"):
        p = data.get(phase)
        mfu = p.get("mfu") if p else None
        cells += [f"{p['rays_per_s']:.0f}" if p else "", f"{100 * mfu:.1f} %" if mfu is not None else ""]
    print(f"| {path.stem} | " + " | ".join(cells) + " |")

metrics = out / "lego" / "metrics.jsonl"
if metrics.exists():
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    val = [r for r in rows if r.get("split") == "val"]
    print("\nlego validation (2 test views, 4 scales):\n\n| step | train s | PSNR | per scale |\n|---|---|---|---|")
    for r in val:
        print(f"| {r['step']} | {r['elapsed_s']:.0f} | {r['psnr']:.2f} | " + " / ".join(f"{p:.2f}" for p in r["psnr_levels"]) + " |")
for name, label in (("lego", "lego eval"), ("fast", "grid model (--config fast), full-size lego, eval")):
    results = out / name / "eval" / "results.json"
    if results.exists():
        data = json.loads(results.read_text())
        average = data["average"]["psnr"]
        print(f"\n{label} at step {data['step']}: average PSNR {average if average is None else round(average, 2)}, per scale "
              + ", ".join(f"{s['psnr']:.2f}" for s in data["scales"] if s["psnr"] is not None)
              + " (" + ", ".join(str(s["num_images"]) for s in data["scales"]) + " test views)")
metrics = out / "fast" / "metrics.jsonl"
if metrics.exists():
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("split") == "train"]
    if train:
        print(f"\ngrid model: {train[-1]['step']} steps in {train[-1]['elapsed_s']:.0f} s of training")
PY
echo "== done in $(( $(date +%s) - start ))s: $OUT/summary.md"
cat "$OUT/summary.md"
