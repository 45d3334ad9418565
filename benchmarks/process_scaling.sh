#!/usr/bin/env bash
# Training throughput of 1 process x 1 thread, 1 x 2 and 2 processes x 1 thread (--nproc 2, gloo)
# on the demo config; prints, per run, the load average, the median rays/s of the 50-step
# windows after the first, and every window. Two interleaved repeats.
# Usage: benchmarks/process_scaling.sh MULTISCALE_DEMO_SCENE [OUT]
#   (the scene `make demo` converts: out/demo/multiscale/demo)
set -euo pipefail
DATA=${1:?usage: benchmarks/process_scaling.sh MULTISCALE_DEMO_SCENE [OUT]}
OUT=${2:-out/process-scaling}
if [ -e "$OUT" ]; then echo "error: $OUT already exists; name a new folder" >&2; exit 1; fi
mkdir -p "$OUT"
cat > $OUT/cfg.yaml <<'Y'
batch_size: 512
lr_init: 3.0e-3
lr_final: 1.0e-4
lr_delay_steps: 100
max_steps: 300
check_interval: 1000
log_interval: 50
val_views: 1
model:
  num_samples: 24
  netdepth: 4
  netwidth: 64
  netwidth_condition: 32
  max_deg_point: 10
Y
sed 's/^val_views: 1$/val_views: 1\ncpu_threads: 1/' $OUT/cfg.yaml > $OUT/cfg1.yaml
sed 's/^val_views: 1$/val_views: 1\ncpu_threads: 2/' $OUT/cfg.yaml > $OUT/cfg2.yaml
med() { python - "$1" <<'P'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"split": "train"' in l]
print(round(statistics.median(r["rays_per_s"] for r in rows[1:]), 1), [round(r["rays_per_s"]) for r in rows])
P
}
for rep in 1 2; do
  for mode in 1x1 1x2 2x1; do
    name=$mode-$rep
    case $mode in
      1x1) mipnerf train --multiscale --config $OUT/cfg1.yaml --data $DATA --out-dir $OUT --exp-name $name --no-progress --device cpu >/dev/null ;;
      1x2) mipnerf train --multiscale --config $OUT/cfg2.yaml --data $DATA --out-dir $OUT --exp-name $name --no-progress --device cpu >/dev/null ;;
      2x1) OMP_NUM_THREADS=1 mipnerf train --multiscale --config $OUT/cfg1.yaml --data $DATA --out-dir $OUT --exp-name $name --no-progress --nproc 2 --device cpu >/dev/null ;;
    esac
    echo "$name $(uptime | sed 's/.*average: //') $(med $OUT/$name/metrics.jsonl)"
  done
done
