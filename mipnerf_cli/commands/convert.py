"""`mipnerf convert`: Blender scene(s) -> multiscale scene(s), as google/mipnerf's converter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.console import ProgressBar, info
from mipnerf_cli.data.convert import convert_blender, plan_conversion


def convert_command(
    blender_dir: Annotated[
        Path,
        typer.Argument(
            help="A Blender scene (folder with transforms_train.json) or a folder of such scenes.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(help="Output folder; each scene is written to OUT_DIR/<scene name>.", show_default=False),
    ],
    n_down: Annotated[
        int,
        typer.Option(
            "--n-down", help="Number of scales: full size, 1/2, 1/4, ... (image sides must divide by 2^(n-1))."
        ),
    ] = 4,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a scene that already exists in OUT_DIR.")
    ] = False,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", help="Threads for PNG decoding/encoding (default: all cores, at most 8).", min=1),
    ] = None,
) -> None:
    """Convert Blender scenes to the multiscale format (4 scales, metadata.json), as mip-NeRF's converter does.

    Images without an alpha channel are written with alpha 255 (opaque). Nothing is written
    to OUT_DIR unless the whole conversion succeeds.
    """
    scenes = plan_conversion(blender_dir, out_dir, n_down, overwrite)
    for scene in scenes:
        counts = ", ".join(f"{name} {len(split.frames)}" for name, split in scene.splits.items())
        height, width = next(iter(scene.sizes.values()))
        info(f"{scene.name}: {counts} images of {height}x{width} (HxW) -> {n_down} scales")
    total = sum(scene.num_images for scene in scenes)
    start = time.perf_counter()
    with ProgressBar("convert", total=total, unit="images") as bar:
        written = convert_blender(
            blender_dir,
            out_dir,
            n_down,
            overwrite,
            workers,
            progress=lambda done, _total: bar.update(advance=1),
            scenes=scenes,
        )
    elapsed = time.perf_counter() - start
    for path in written:
        info(f"wrote {path}")
    info(f"converted {total} images x {n_down} scales in {elapsed:.1f} s")
