#!/usr/bin/env python3
"""A smaller copy of a Blender scene, for CPU-sized runs (`make demo-lego`).

Every image of every split is shrunk by an integer FACTOR (the mean of each FACTOR x FACTOR
block of straight RGBA, the same area filter as `mipnerf train --downscale` and the
multiscale converter) and the transforms_<split>.json files are copied unchanged: the
field of view does not depend on the image size. `--test-views N` keeps every k-th test
view so that N of them still go round the whole ring.

    python scripts/downscale_blender.py ../shared/data/lego out/lego-cpu/blender/lego --factor 4

Then `mipnerf convert` turns the copy into a multiscale scene (200, 100, 50, 25 px for lego).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mipnerf_cli.data.formats.transforms import SPLITS, check_image_sizes, read_blender_split, transforms_path
from mipnerf_cli.data.images import area_downscale, read_rgba, run_in_threads, write_png
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.staging import StagedFolder


def downscale_scene(source: Path, target: Path, factor: int, test_views: int | None, workers: int | None) -> int:
    """Write the shrunk scene to `target` (staged, then renamed); returns the number of images."""
    splits = {split: read_blender_split(source, split) for split in SPLITS if transforms_path(source, split).is_file()}
    if "train" not in splits:
        raise MipNerfError(f"{source}: no transforms_train.json; give a Blender scene folder")
    jobs = []
    metas = {}
    for split, parsed in splits.items():
        check_image_sizes(parsed, factor, f" (--factor {factor})")
        meta = json.loads(transforms_path(source, split).read_text(encoding="utf-8"))
        frames = list(zip(meta["frames"], parsed.frames))
        if split == "test" and test_views and test_views < len(frames):
            stride = len(frames) / test_views
            frames = [frames[int(k * stride)] for k in range(test_views)]
        metas[split] = {**meta, "frames": [raw for raw, _ in frames]}
        jobs += [(parsed_frame.image_path, split, raw["file_path"]) for raw, parsed_frame in frames]

    staged = StagedFolder.create(target)
    try:

        def shrink(k: int) -> None:
            image_path, split, file_path = jobs[k]
            out = staged.path / (file_path if file_path.endswith(".png") else file_path + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            write_png(out, area_downscale(read_rgba(image_path), factor))

        def report(done: int, total: int) -> None:
            if done == total or done % 100 == 0:
                print(f"downscale {done}/{total}", flush=True)

        run_in_threads(shrink, len(jobs), workers, report)
        for split, meta in metas.items():
            (staged.path / f"transforms_{split}.json").write_text(json.dumps(meta, indent=4), encoding="utf-8")
        staged.commit()
    finally:
        staged.discard()
    return len(jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="Blender scene folder (transforms_train.json, train/, ...)")
    parser.add_argument("target", type=Path, help="folder to write the smaller scene to (replaced if it holds one)")
    parser.add_argument("--factor", type=int, default=4, help="shrink factor (image sides must divide by it)")
    parser.add_argument("--test-views", type=int, default=None, help="keep N test views spread over the ring")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all cores, at most 8)")
    args = parser.parse_args(argv)
    if args.factor < 1:
        sys.exit("error: --factor must be at least 1")
    if args.target.exists() and any(args.target.iterdir()) and not (args.target / "transforms_train.json").is_file():
        sys.exit(f"error: {args.target} exists and is not a Blender scene; refusing to replace it")
    try:
        count = downscale_scene(args.source, args.target, args.factor, args.test_views, args.workers)
    except MipNerfError as error:
        sys.exit(f"error: {error}")
    print(f"wrote {args.target}: {count} images at 1/{args.factor}")


if __name__ == "__main__":
    main()
