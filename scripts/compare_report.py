#!/usr/bin/env python3
"""The mip-NeRF vs NeRF report of `make compare`, from two `mipnerf eval --save-image` folders.

Writes a markdown table (PSNR and SSIM per scale, their averages, and the mip-NeRF minus
NeRF difference) and a side-by-side image of one scale (ground truth | NeRF | mip-NeRF,
one row per test view) enlarged with nearest-neighbour sampling so that single pixels,
and the aliasing in them, stay visible.

    python scripts/compare_report.py --nerf RUN/eval/STEP --mip RUN/eval/STEP \
        --markdown out/compare/compare.md --image out/compare/compare_1-8.png

Only reads the two folders; uses numpy, imageio and OpenCV (the tool's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np


def load_results(folder: Path) -> dict:
    path = folder / "results.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        sys.exit(f"error: cannot read {path}: {error}; run `mipnerf eval --scale 4 --save-image` first")


def _number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _difference(a, b, digits: int) -> str:
    return "—" if a is None or b is None else f"{b - a:+.{digits}f}"


def _pair(a, b, digits: int) -> str:
    """NeRF's and mip-NeRF's value and the difference; the better value in bold (higher is better)."""
    left, right = _number(a, digits), _number(b, digits)
    if a is not None and b is not None and a != b:
        left, right = (f"**{left}**", right) if a > b else (left, f"**{right}**")
    return f"{left} | {right} | {_difference(a, b, digits)}"


def _pair_cells(a: dict, b: dict) -> str:
    return f"{_pair(a['psnr'], b['psnr'], 2)} | {_pair(a['ssim'], b['ssim'], 4)}"


def scale_label(scale: dict) -> str:
    name = "full" if scale["factor"] == 1 else f"1/{scale['factor']}"
    return f"{name} ({scale['width']}×{scale['height']})"


def markdown_table(nerf: dict, mip: dict) -> str:
    """PSNR and SSIM per scale and averaged, NeRF next to mip-NeRF."""
    if [s["factor"] for s in nerf["scales"]] != [s["factor"] for s in mip["scales"]]:
        sys.exit("error: the two evaluations scored different scales; evaluate both with the same --scale")
    lines = [
        "| scale | NeRF PSNR | mip-NeRF PSNR | Δ PSNR | NeRF SSIM | mip-NeRF SSIM | Δ SSIM |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in zip(nerf["scales"], mip["scales"]):
        lines.append(f"| {scale_label(b)} | {_pair_cells(a, b)} |")
    lines.append(f"| average | {_pair_cells(nerf['average'], mip['average'])} |")
    missing_ssim = [scale_label(s) for s in mip["scales"] if s["ssim"] is None]
    steps = (
        f"both at step {mip['step']}"
        if mip["step"] == nerf["step"]
        else f"NeRF at step {nerf['step']}, mip-NeRF at step {mip['step']}"
    )
    notes = [
        "",
        f"Test split, {mip['scales'][0]['num_images']} views at each of {len(mip['scales'])} scales; {steps}.",
    ]
    if missing_ssim:
        notes.append(
            f"SSIM (11×11 window) is not defined for images smaller than 11 pixels: {', '.join(missing_ssim)}."
        )
    return "\n".join(lines + notes) + "\n"


def image_stems(results: dict, level: int) -> list[str]:
    return [row["file"] for row in results["images"] if row["scale"] == level]


def label_bar(texts: list[str], tile_width: int, gap: int) -> np.ndarray:
    """A white strip with one centred label above each column."""
    height = 22
    width = len(texts) * tile_width + (len(texts) - 1) * gap
    bar = np.full((height, width, 3), 255, np.uint8)
    for k, text in enumerate(texts):
        (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        x = k * (tile_width + gap) + max(0, (tile_width - text_width) // 2)
        cv2.putText(bar, text, (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def enlarge(image: np.ndarray, zoom: int) -> np.ndarray:
    return np.repeat(np.repeat(image[..., :3], zoom, axis=0), zoom, axis=1)


def side_by_side(
    nerf_dir: Path, mip_dir: Path, stems: list[str], zoom: int, crop: tuple[int, int, int, int] | None
) -> np.ndarray:
    """Rows of ground truth | NeRF | mip-NeRF for each image stem, enlarged `zoom` times."""
    gap = 4
    rows = []
    for stem in stems:
        tiles = [
            iio.imread(mip_dir / "images" / f"{stem}_gt.png"),
            iio.imread(nerf_dir / "images" / f"{stem}_rgb.png"),
            iio.imread(mip_dir / "images" / f"{stem}_rgb.png"),
        ]
        if crop is not None:
            x, y, w, h = crop
            tiles = [tile[y : y + h, x : x + w] for tile in tiles]
        tiles = [enlarge(tile, zoom) for tile in tiles]
        separator = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        rows.append(np.concatenate([tiles[0], separator, tiles[1], separator, tiles[2]], axis=1))
    width = rows[0].shape[1]
    tile_width = (width - 2 * gap) // 3
    spaced = [label_bar(["ground truth", "NeRF", "mip-NeRF"], tile_width, gap)]
    for row in rows:
        spaced += [np.full((gap, width, 3), 255, np.uint8), row]
    return np.concatenate(spaced, axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nerf", type=Path, required=True, help="eval folder of the --no-integration run")
    parser.add_argument("--mip", type=Path, required=True, help="eval folder of the mip-NeRF run")
    parser.add_argument("--markdown", type=Path, required=True, help="where to write the table")
    parser.add_argument("--image", type=Path, required=True, help="where to write the side-by-side PNG")
    parser.add_argument("--level", type=int, default=3, help="scale of the image: 3 = 1/8 (default)")
    parser.add_argument("--views", type=int, default=4, help="test views (rows) in the image")
    parser.add_argument("--zoom", type=int, default=0, help="nearest-neighbour enlargement (default: to about 128 px)")
    parser.add_argument("--crop", type=str, default=None, help="X,Y,W,H region of the level's images (default: all)")
    args = parser.parse_args(argv)

    nerf, mip = load_results(args.nerf), load_results(args.mip)
    table = markdown_table(nerf, mip)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table, encoding="utf-8")

    stems = [s for s in image_stems(mip, args.level) if s in set(image_stems(nerf, args.level))][: args.views]
    if not stems:
        sys.exit(
            f"error: no images of level {args.level} in both folders; evaluate with --scale {args.level + 1} --save-image"
        )
    crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
    size = crop[2] if crop else iio.imread(args.mip / "images" / f"{stems[0]}_gt.png").shape[1]
    zoom = args.zoom or max(1, round(128 / size))
    picture = side_by_side(args.nerf, args.mip, stems, zoom, crop)
    args.image.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.image, picture, extension=".png", optimize=True)
    print(table)
    print(f"wrote {args.markdown} and {args.image} ({picture.shape[1]}×{picture.shape[0]})")


if __name__ == "__main__":
    main()
