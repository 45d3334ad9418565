"""`mipnerf demo-scene`: write a small procedural Blender-format scene (no download)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.console import ProgressBar, info
from mipnerf_cli.demo.scenes import DemoSceneSpec, check_spec, make_demo_scene
from mipnerf_cli.errors import MipNerfError


def demo_scene_command(
    out_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder to write the Blender scene to (transforms_*.json, train/ val/ test/).", show_default=False
        ),
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="blender (objects seen from all around) or forward-facing (an LLFF scene).")
    ] = "blender",
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the camera poses and colours.")] = 0,
    size: Annotated[
        int, typer.Option("--size", help="Image width and height in pixels (a multiple of 8 converts to 4 scales).")
    ] = 64,
    train: Annotated[
        Optional[int],
        typer.Option(
            "--train", help="Number of training views (default 40); forward-facing: number of images (default 12)."
        ),
    ] = None,
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
    --kind forward-facing writes an LLFF scene instead (poses_bounds.npy, images/, images_2/,
    images_4/): the objects before a checkered backdrop, cameras on a jittered grid, SIZE wide
    and 3/4 SIZE high; every 8th image is a test image.
    """
    if kind == "forward-facing":
        _forward_facing(out_dir, seed, size, train if train is not None else 12, overwrite, workers)
        return
    if kind != "blender":
        raise MipNerfError(f"--kind {kind!r}: use blender or forward-facing")
    train = train if train is not None else 40
    spec = DemoSceneSpec(height=size, width=size, num_train=train, num_val=val, num_test=test, seed=seed)
    check_spec(spec)
    total = train + val + test
    start = time.perf_counter()
    with ProgressBar("demo-scene", total=total, unit="images") as bar:
        make_demo_scene(out_dir, spec, overwrite, workers, progress=lambda done, _total: bar.update(advance=1))
    info(
        f"wrote {out_dir}: {train} train, {val} val, {test} test views of {size}x{size} in {time.perf_counter() - start:.1f} s"
    )


def _forward_facing(out_dir: Path, seed: int, size: int, count: int, overwrite: bool, workers: Optional[int]) -> None:
    from mipnerf_cli.demo.llff import ForwardFacingSpec, check_forward_facing_spec, make_forward_facing_scene

    spec = ForwardFacingSpec(width=size, height=max(8, (size * 3 // 4) // 4 * 4), num_images=count, seed=seed)
    check_forward_facing_spec(spec)
    start = time.perf_counter()
    with ProgressBar("demo-scene", total=count, unit="images") as bar:
        make_forward_facing_scene(
            out_dir, spec, overwrite, workers, progress=lambda done, _total: bar.update(advance=1)
        )
    info(
        f"wrote {out_dir}: {count} forward-facing views of {spec.width}x{spec.height} (LLFF) in {time.perf_counter() - start:.1f} s"
    )
