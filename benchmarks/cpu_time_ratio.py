#!/usr/bin/env python
"""Per-core efficiency, anchor vs ours, measured in CPU time on one thread (robust to a busy machine).

Wall-clock rates on a shared machine swing with the other processes' load; the CPU time a
single-threaded step consumes swings much less (it still pays for cache and memory-bandwidth
contention). This script times, in one process and interleaved, the anchor's train step and
2048-ray render (hjxwhy/mipnerf_pl's MipNerf, extracted at run time from a git mirror by the
shared anchor script's own `extract`) and ours (`training.train_step` and `render_rays`, the
fast path with one worker), all on one torch thread, and prints rays per CPU-second. Each
side runs in its own process (ours sets a process-wide allocator option the anchor must not
inherit), the two alternating ROUNDS times; each process warms up once, then measures.

    python benchmarks/cpu_time_ratio.py --mirror /path/to/mipnerf_pl.git [--rounds 3]

The anchor needs `einops` (pip install einops, or --anchor-pythonpath DIR).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR = REPO.parent / "shared" / "bench" / "anchor_mipnerf_pl.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", required=True)
    parser.add_argument("--anchor-script", type=Path, default=DEFAULT_ANCHOR)
    parser.add_argument("--anchor-pythonpath", default="")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--side", choices=("anchor", "ours"), help=argparse.SUPPRESS)  # one measuring process
    args = parser.parse_args()
    if args.side is None:
        return orchestrate(args)

    if args.anchor_pythonpath:
        sys.path.insert(0, args.anchor_pythonpath)
    spec = importlib.util.spec_from_file_location("anchor_script", args.anchor_script)
    anchor_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor_script)
    sys.path.insert(0, str(anchor_script.extract(args.mirror)))
    sys.path.insert(0, str(REPO))

    import torch

    torch.set_num_threads(1)
    from datasets.datasets import Rays  # the anchor's (stubbed by its script)
    from models.mip_nerf import MipNerf as AnchorNerf

    from mipnerf_cli import training
    from mipnerf_cli.bench import workload
    from mipnerf_cli.core.render import render_rays

    torch.manual_seed(0)
    anchor = AnchorNerf()
    anchor_opt = torch.optim.Adam(anchor.parameters(), lr=5e-4)
    anchor_rays = anchor_script.make_rays(torch, Rays, args.batch, 1)
    anchor_render_rays = anchor_script.make_rays(torch, Rays, args.chunk, 2)
    target = torch.rand(args.batch, 3)

    def anchor_train():
        ret = anchor(anchor_rays, True, True)
        loss = 0.1 * ((ret[0][0] - target) ** 2).mean() + ((ret[1][0] - target) ** 2).mean()
        anchor_opt.zero_grad(set_to_none=True)
        loss.backward()
        anchor_opt.step()

    def anchor_render():
        with torch.no_grad():
            anchor(anchor_render_rays, False, True)

    from mipnerf_cli.settings import BenchSettings

    options = BenchSettings(batch=args.batch, chunk=args.chunk, fast_workers=1)
    settings = workload.train_settings(options)
    ours = workload.build_model(options, torch.device("cpu"))
    ours_opt = torch.optim.Adam(ours.parameters(), lr=5e-4)
    rays = workload.anchor_rays(args.batch, 1)
    render_batch = workload.anchor_rays(args.chunk, 2)
    step_counter = iter(range(1, 1 << 30))

    def ours_train():
        generator = training.step_generator(0, next(step_counter), "noise")
        training.train_step(ours, ours_opt, rays, target, 5e-4, settings, generator)

    def ours_render():
        render_rays(ours, render_batch, args.chunk, white_bkgd=True)

    jobs = {"train": (anchor_train, args.batch), "render": (anchor_render, args.chunk)}
    if args.side == "ours":
        jobs = {"train": (ours_train, args.batch), "render": (ours_render, args.chunk)}
    rates = {}
    for name, (job, rays_per_call) in jobs.items():
        job()  # warm-up
        tic = time.process_time()
        job()
        rates[name] = rays_per_call / (time.process_time() - tic)
    print(json.dumps(rates))


def orchestrate(args) -> None:
    import subprocess

    rates: dict[str, list[float]] = {
        f"{side} {phase}": [] for side in ("anchor", "ours") for phase in ("train", "render")
    }
    for r in range(args.rounds):
        for side in ("anchor", "ours"):
            print(f"round {r + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--side", side, "--mirror", args.mirror, "--anchor-script", str(args.anchor_script),
                       "--anchor-pythonpath", args.anchor_pythonpath, "--batch", str(args.batch), "--chunk", str(args.chunk)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            for phase, rate in json.loads(done.stdout.strip().splitlines()[-1]).items():
                rates[f"{side} {phase}"].append(rate)
    for phase in ("train", "render"):
        a, o = statistics.median(rates[f"anchor {phase}"]), statistics.median(rates[f"ours {phase}"])
        ratios = [y / x for x, y in zip(rates[f"anchor {phase}"], rates[f"ours {phase}"])]
        print(f"{phase}: anchor {a:.1f}, ours {o:.1f} rays per CPU-second (one thread); "
              f"ratio {statistics.median(ratios):.2f}× (per round {', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    print(json.dumps({"rays_per_cpu_second": rates}))


if __name__ == "__main__":
    main()
