"""PSNR per scale of a trained run on a multiscale scene's test split, whatever it was trained on.

`mipnerf eval` refuses a scene of another kind than the run's, because a Blender, multiscale
or LLFF scene puts its cameras in different frames. A photo capture converted with
`--multiscale` is the exception this script is for: its full-resolution level and the
single-scale capture (images/ + poses_bounds.npy, spherified) give the same rays to the last
bit (checked below on the first test image), so a model trained single-scale on the capture
can be scored at every scale, beside one trained multiscale (the mip-NeRF paper's Table 1
comparison, on real photos).

    python benchmarks/score_on_multiscale.py RUN MULTISCALE_SCENE [--single SINGLE_SCENE] [--limit N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mipnerf_cli.core.metrics import psnr
from mipnerf_cli.core.render import render_image
from mipnerf_cli.data import llff_options, load_scene
from mipnerf_cli.runs.trained import load_trained_model
from mipnerf_cli.runtime import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("scene", type=Path, help="the multiscale capture (metadata.json)")
    parser.add_argument("--single", type=Path, help="the same capture read single-scale, to check the rays agree")
    parser.add_argument("--limit", type=int, default=None, help="first N test images of each scale")
    parser.add_argument("--chunk", type=int, default=4096)
    args = parser.parse_args()

    runtime = resolve("cpu", cpu_threads=1, mixed_precision=False)
    runtime.apply()
    trained = load_trained_model(args.run, None, runtime.device)
    images = load_scene(args.scene, "test", multiscale=True, white_bkgd=trained.white_bkgd)
    if args.single is not None:
        single = load_scene(args.single, "test", **llff_options(trained.settings))
        a, _ = single.image_rays(0)
        b, _ = images.image_rays(images.levels.index(0))
        gap = max(float((getattr(a, k) - getattr(b, k)).abs().max()) for k in ("origins", "directions", "radii"))
        print(f"rays of the first test image, single-scale vs multiscale level 0: max difference {gap:g}")
    scores: dict[int, list[float]] = {}
    for level in sorted(set(images.levels)):
        chosen = [i for i, lv in enumerate(images.levels) if lv == level][: args.limit]
        for i in chosen:
            rays, target = images.image_rays(i)
            with torch.no_grad():
                out = render_image(
                    trained.model,
                    rays,
                    images.heights[i],
                    images.widths[i],
                    args.chunk,
                    trained.white_bkgd,
                    **runtime.render_options(trained.model),
                )
            value = float(psnr(out["rgb"], target.reshape(out["rgb"].shape)))
            scores.setdefault(level, []).append(value)
            print(f"scale 1/{2**level}  image {i}: {value:.2f} dB", flush=True)
    table = {f"1/{2**lv}" if lv else "full": sum(v) / len(v) for lv, v in scores.items()}
    table["average"] = sum(table.values()) / len(table)
    print(json.dumps({"run": str(args.run), "step": trained.step, "psnr": table}))


if __name__ == "__main__":
    main()
