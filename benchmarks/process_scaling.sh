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
# The packaged demo config, with 300 steps, a metrics line every 50 and 1 or 2 torch threads.
python - "$OUT" <<'P'
import sys
from pathlib import Path
import yaml
import mipnerf_cli
demo = yaml.safe_load((Path(mipnerf_cli.__file__).parent / "configs" / "demo.yaml").read_text())
demo.update(max_steps=300, check_interval=1000, log_interval=50, val_views=1)
for threads in (1, 2):
    (Path(sys.argv[1]) / f"cfg{threads}.yaml").write_text(yaml.safe_dump({**demo, "cpu_threads": threads}))
P
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
      1x1) mipnerf train --multiscale --config "$OUT/cfg1.yaml" --data $DATA --out-dir $OUT --exp-name $name --no-progress --device cpu >/dev/null ;;
      1x2) mipnerf train --multiscale --config "$OUT/cfg2.yaml" --data $DATA --out-dir $OUT --exp-name $name --no-progress --device cpu >/dev/null ;;
      2x1) OMP_NUM_THREADS=1 mipnerf train --multiscale --config "$OUT/cfg1.yaml" --data $DATA --out-dir $OUT --exp-name $name --no-progress --nproc 2 --device cpu >/dev/null ;;
    esac
    echo "$name $(uptime | sed 's/.*average: //') $(med $OUT/$name/metrics.jsonl)"
  done
done
