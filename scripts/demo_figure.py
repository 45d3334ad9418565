#!/usr/bin/env python3
"""README picture of an eval folder: ground truth | rendered | depth | accumulation at full
resolution, one row per test view, enlarged with nearest-neighbour sampling.

    python scripts/demo_figure.py out/demo-multiscale/eval/1000 docs/demo_eval.png --views 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_report import enlarge, label_bar  # noqa: E402

COLUMNS = [("gt", "ground truth"), ("rgb", "mip-NeRF"), ("depth", "depth"), ("acc", "accumulation")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", type=Path, help="folder written by `mipnerf eval --save-image`")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--views", type=int, default=2, help="rows (test views)")
    parser.add_argument("--level", type=int, default=0, help="scale: 0 = full resolution")
    parser.add_argument("--zoom", type=int, default=3, help="nearest-neighbour enlargement")
    args = parser.parse_args(argv)

    images = args.eval_dir / "images"
    stems = sorted({p.name[: -len("_rgb.png")] for p in images.glob("*_rgb.png")})
    stems = [s for s in stems if s.endswith(f"_d{args.level}") or "_d" not in s][: args.views]
    if not stems:
        sys.exit(f"error: no *_rgb.png in {images}; run `mipnerf eval --save-image` first")
    gap = 4
    rows = []
    for stem in stems:
        tiles = [enlarge(iio.imread(images / f"{stem}_{kind}.png"), args.zoom) for kind, _ in COLUMNS]
        separator = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        row = tiles[0]
        for tile in tiles[1:]:
            row = np.concatenate([row, separator, tile], axis=1)
        rows.append(row)
    parts = [label_bar([label for _, label in COLUMNS], tiles[0].shape[1], gap)]
    for row in rows:
        parts += [np.full((gap, row.shape[1], 3), 255, np.uint8), row]
    picture = np.concatenate(parts, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, picture, extension=".png", optimize=True)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]}, {args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
