"""`mipnerf convert`: a Blender scene -> a multiscale scene (as google/mipnerf's converter), or
a folder of photos / a video -> a trainable scene with COLMAP poses (pycolmap)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.console import ConsoleReporter, ProgressBar, info


def convert_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SRC",
            help="A Blender scene (folder with transforms_train.json) or a folder of such scenes; "
            "a folder of photos (.jpg, .jpeg, .png); or a video file.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="Output folder. Blender: each scene goes to OUT/<scene name>. Photos or video: OUT is the scene.",
            show_default=False,
        ),
    ],
    n_down: Annotated[
        int,
        typer.Option(
            "--n-down",
            help="Blender: number of scales: full size, 1/2, 1/4, ... (image sides must divide by 2^(n-1)).",
        ),
    ] = 4,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a scene that already exists in OUT (only a converted scene).")
    ] = False,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", help="Threads for PNG decoding/encoding (default: all cores, at most 8).", min=1),
    ] = None,
    fps: Annotated[
        Optional[float],
        typer.Option("--fps", help="Video: frames to take per second of video (the sharpest of each window).", min=0),
    ] = None,
    frames: Annotated[
        Optional[int],
        typer.Option("--frames", help="Video: number of frames to take, evenly spread (default 100).", min=3),
    ] = None,
    camera_model: Annotated[
        str,
        typer.Option(
            "--camera-model",
            help="Photos/video: COLMAP camera model estimated (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, "
            "OPENCV, FULL_OPENCV); images are undistorted to PINHOLE.",
        ),
    ] = "SIMPLE_RADIAL",
    per_image_cameras: Annotated[
        bool,
        typer.Option(
            "--per-image-cameras", help="Photos/video: one camera per image (zoom changed) instead of one shared."
        ),
    ] = False,
    scene_kind: Annotated[
        Optional[str],
        typer.Option(
            "--scene-kind",
            help="Photos/video: forward-facing or 360 (default: detected from where the cameras stand).",
            show_default=False,
        ),
    ] = None,
    multiscale: Annotated[
        bool,
        typer.Option(
            "--multiscale",
            help="Photos/video (360 scenes): also write the 4-level multiscale scene (metadata.json) mip-NeRF trains on.",
        ),
    ] = False,
    llffhold: Annotated[
        int,
        typer.Option("--llffhold", help="Photos/video with --multiscale: every N-th image is a test image.", min=1),
    ] = 8,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", help="Photos/video: threads for COLMAP (default: all cores).", min=1),
    ] = None,
) -> None:
    """Convert a Blender scene to the multiscale format, or photos / a video to a trainable scene.

    Blender: 4 scales and metadata.json, as mip-NeRF's converter does. Photos or a video:
    camera poses by structure from motion (pycolmap: SIFT, matching, incremental mapping),
    images undistorted, transforms.json + poses_bounds.npy + images_2/4/8 written to OUT.
    Nothing is written to OUT unless the whole conversion succeeds.
    """
    from mipnerf_cli.convert.capture.sources import source_kind

    if source_kind(source) == "blender":
        capture_only = {
            "--fps": fps is not None,
            "--frames": frames is not None,
            "--camera-model": camera_model != "SIMPLE_RADIAL",
            "--per-image-cameras": per_image_cameras,
            "--scene-kind": scene_kind is not None,
            "--multiscale": multiscale,
            "--llffhold": llffhold != 8,
            "--threads": threads is not None,
        }
        given = [name for name, used in capture_only.items() if used]
        if given:
            typer.echo(f"error: {', '.join(given)}: for photos or a video only; {source} is a Blender scene", err=True)
            raise typer.Exit(1)
        convert_blender_scenes(source, out_dir, n_down, overwrite, workers)
        return
    convert_photos(
        source,
        out_dir,
        n_down=n_down,
        overwrite=overwrite,
        workers=workers,
        fps=fps,
        frames=frames,
        camera_model=camera_model,
        per_image_cameras=per_image_cameras,
        scene_kind=scene_kind,
        multiscale=multiscale,
        llffhold=llffhold,
        threads=threads,
    )


def convert_blender_scenes(blender_dir: Path, out_dir: Path, n_down: int, overwrite: bool, workers) -> None:
    from mipnerf_cli.convert.multiscale import convert_blender, plan_conversion

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


def convert_photos(source: Path, out_dir: Path, *, n_down: int, **options) -> None:
    from mipnerf_cli.convert.capture.pipeline import convert_capture
    from mipnerf_cli.settings import CaptureOptions, SfmOptions

    if n_down != 4:
        typer.echo("error: --n-down applies to Blender scenes only; drop it for photos or a video", err=True)
        raise typer.Exit(1)
    settings = CaptureOptions(
        fps=options["fps"],
        frames=options["frames"],
        sfm=SfmOptions(options["camera_model"], options["per_image_cameras"], options["threads"]),
        scene_kind=options["scene_kind"],
        multiscale=options["multiscale"],
        llffhold=options["llffhold"],
        overwrite=options["overwrite"],
        workers=options["workers"],
    )
    start = time.perf_counter()
    summary = convert_capture(source, out_dir, settings, ConsoleReporter())
    elapsed = time.perf_counter() - start
    width, height = summary.size
    info(
        f"registered {len(summary.registered)}/{summary.num_inputs} images ({width}x{height}, focal {summary.focal:.1f} px)"
    )
    if summary.skipped:
        info(f"left out (unreadable): {', '.join(name for name, _ in summary.skipped)}")
    if summary.unregistered:
        info(f"left out (not registered): {', '.join(summary.unregistered)}")
    how = "detected" if summary.scene_kind == summary.detected_kind else f"given; detected {summary.detected_kind}"
    info(f"scene kind: {summary.scene_kind} ({how}, camera spread {summary.camera_spread_deg:.0f} deg)")
    extra = " (+ multiscale metadata.json)" if summary.multiscale else ""
    info(f"wrote {summary.out_dir}{extra} in {elapsed:.1f} s")
