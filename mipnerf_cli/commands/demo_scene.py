"""`mipnerf demo-scene`: write a small procedural Blender-format scene (no download)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.console import ProgressBar, info
from mipnerf_cli.data.demo import DemoSceneSpec, check_spec, make_demo_scene


def demo_scene_command(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write the Blender scene to (transforms_*.json, train/ val/ test/).", show_default=False)
    ],
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the camera poses and colours.")] = 0,
    size: Annotated[
        int, typer.Option("--size", help="Image width and height in pixels (a multiple of 8 converts to 4 scales).")
    ] = 64,
    train: Annotated[int, typer.Option("--train", help="Number of training views.")] = 40,
    val: Annotated[int, typer.Option("--val", help="Number of validation views.")] = 8,
    test: Annotated[int, typer.Option("--test", help="Number of test views (a ring around the scene).")] = 8,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT_DIR if it already holds a Blender scene.")
    ] = False,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Rendering threads (default: all cores, at most 8).", min=1)
    ] = None,
) -> None:
    """Generate a procedural scene: textured spheres and boxes with fine stripes and checks, RGBA, NeRF-synthetic cameras.

    Convert it with `mipnerf convert OUT_DIR MULTISCALE_DIR` to train on several scales.
    """
    spec = DemoSceneSpec(height=size, width=size, num_train=train, num_val=val, num_test=test, seed=seed)
    check_spec(spec)
    total = train + val + test
    start = time.perf_counter()
    with ProgressBar("demo-scene", total=total, unit="images") as bar:
        make_demo_scene(out_dir, spec, overwrite, workers, progress=lambda done, _total: bar.update(advance=1))
    info(f"wrote {out_dir}: {train} train, {val} val, {test} test views of {size}x{size} in {time.perf_counter() - start:.1f} s")
