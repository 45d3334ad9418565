"""`mipnerf render`: a video of a trained model along a camera path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands import launch
from mipnerf_cli.commands.launch import NprocOption
from mipnerf_cli.commands.options import (
    ChunkOption,
    CkptOption,
    ConfigOption,
    CpuThreadsOption,
    DataOption,
    DeviceOption,
    ProgressOption,
    RunArgument,
    RunOption,
    one_of,
    run_settings,
)
from mipnerf_cli.console import ConsoleReporter, info


def render_command(
    ctx: typer.Context,
    run_path: RunArgument = None,
    config: ConfigOption = None,
    data: DataOption = None,
    path: Annotated[
        Optional[str],
        typer.Option(
            "--path",
            help="Camera path: auto (spiral for forward-facing LLFF scenes, spheric otherwise), spheric (a circle "
            "around the object; the reference's circle for spherified LLFF scenes), spiral (the reference's 2-turn "
            "spiral of a forward-facing LLFF scene), interpolate (a smooth path through the --split cameras in capture "
            "order), or FILE.json (nerfstudio's camera_path.json, a render's cameras.json, or a nerfbaselines trajectory).",
        ),
    ] = None,
    split: Annotated[
        Optional[str],
        typer.Option("--split", help="train or test: the cameras interpolate goes through (and spheric's radius)."),
    ] = None,
    frames: Annotated[
        Optional[int],
        typer.Option(
            "--frames",
            help="Number of frames of spheric / spiral / interpolate (a FILE.json has its own).",
        ),
    ] = None,
    fps: Annotated[
        Optional[float], typer.Option("--fps", help="Frames per second of the video (a FILE.json's fps wins).")
    ] = None,
    downscale: Annotated[
        Optional[float],
        typer.Option(
            "--downscale",
            help="Render at 1/N of the training resolution (focal / N); the older --scale still works.",
        ),
    ] = None,
    radius: Annotated[
        Optional[float],
        typer.Option(
            "--radius", help="Camera distance from the origin. Default: mean distance of the training cameras."
        ),
    ] = None,
    elevation: Annotated[Optional[float], typer.Option("--elevation", help="Degrees above the horizon.")] = None,
    resolution: Annotated[
        Optional[str],
        typer.Option("--resolution", help="WIDTHxHEIGHT, e.g. 200x200 for a quick preview (the field of view stays)."),
    ] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="mp4, gif, or png (frames only).")] = None,
    keep_frames: Annotated[
        Optional[bool], typer.Option("--keep-frames", help="Keep the PNG frames next to the videos.")
    ] = None,
    chunk: ChunkOption = None,
    device: DeviceOption = None,
    cpu_threads: CpuThreadsOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: <run>/render/<path>.")] = None,
    progress: ProgressOption = None,
    nproc: NprocOption = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
    scale: Annotated[
        Optional[float], typer.Option("--scale", hidden=True, help="The older spelling of --downscale.")
    ] = None,
) -> None:
    """Render rgb, depth and accumulation videos of RUN along a camera path into <run>/render/<path>/."""
    from mipnerf_cli.rendering.video import render_path
    from mipnerf_cli.settings import RenderSettings

    flags = dict(
        data=data, path=path, split=split, frames=frames, fps=fps,
        downscale=one_of(("--downscale", downscale), ("--scale", scale)), radius=radius, elevation=elevation,
        resolution=resolution, format=format, keep_frames=keep_frames, chunk=chunk, device=device,
        cpu_threads=cpu_threads, out=out, progress=progress,
    )  # fmt: skip
    settings = run_settings(RenderSettings, config, flags, run_path, run, ckpt)
    if nproc is not None and nproc > 1:
        launch.start_torchrun(ctx, nproc, settings.device)
    result = launch.in_process_group(
        settings.device,
        lambda context: render_path(
            settings,
            context=context,
            report=ConsoleReporter(),
            downscale_flag="--scale" if scale is not None else "--downscale",  # messages name what was typed
        ),
    )
    if result is None:
        return  # another rank than 0: rank 0 reports
    radius = f", radius {result.radius:.3f}" if result.radius is not None else ""
    info(
        f"{result.num_frames} frames of {result.width}×{result.height} (focal {result.focal:.1f}{radius}) "
        f"at {result.rays_per_second:,.0f} rays/s"
    )
    for file in result.files:
        info(f"wrote {file}")
