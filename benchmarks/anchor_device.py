#!/usr/bin/env python
"""The anchor's workload on any device (the shared anchor script times the CPU only).

Loads hjxwhy/mipnerf_pl's MipNerf from a git mirror with the shared anchor script's own
`extract` and `make_rays` (nothing of mipnerf_pl is copied here), moves model and rays to
--device, and prints the same JSON line as the anchor script: train and render rays/s.

    python benchmarks/anchor_device.py --mirror /path/to/mipnerf_pl.git --device cuda [--batch 256] [--chunk 2048] [--steps 20]

Pair it with `mipnerf bench --device cuda --batch 256 --chunk 2048` for the GPU ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR = REPO.parent / "shared" / "bench" / "anchor_mipnerf_pl.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", required=True)
    parser.add_argument("--anchor-script", type=Path, default=DEFAULT_ANCHOR)
    parser.add_argument("--anchor-pythonpath", default="", help="a folder holding einops, if it is not installed")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    if args.anchor_pythonpath:
        sys.path.insert(0, args.anchor_pythonpath)
    spec = importlib.util.spec_from_file_location("anchor_script", args.anchor_script)
    anchor_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor_script)
    sys.path.insert(0, str(anchor_script.extract(args.mirror)))

    import torch
    from datasets.datasets import Rays
    from models.mip_nerf import MipNerf

    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def to_device(rays):
        return Rays(*(t.to(device) for t in rays))

    torch.manual_seed(0)
    model = MipNerf().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    rays = to_device(anchor_script.make_rays(torch, Rays, args.batch, 1))
    target = torch.rand(args.batch, 3).to(device)

    def step() -> None:
        ret = model(rays, True, True)
        loss = 0.1 * ((ret[0][0] - target) ** 2).mean() + ((ret[1][0] - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    sync()
    tic = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    train = args.batch * args.steps / (time.perf_counter() - tic)

    render_rays = to_device(anchor_script.make_rays(torch, Rays, args.chunk, 2))
    with torch.no_grad():
        for _ in range(args.warmup):
            model(render_rays, False, True)
        sync()
        tic = time.perf_counter()
        for _ in range(args.steps):
            model(render_rays, False, True)
        sync()
        render = args.chunk * args.steps / (time.perf_counter() - tic)
    print(json.dumps({"train_rays_per_s": round(train, 2), "render_rays_per_s": round(render, 2), "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}))  # fmt: skip


if __name__ == "__main__":
    main()
