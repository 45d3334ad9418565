"""`mipnerf export`: a trained model's geometry as a PLY mesh or point cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.options import (
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
from mipnerf_cli.console import ProgressBar, info

STAGES = {
    "density": "density grid",
    "colours": "vertex colours",
    "views": "training views",
    "surface": "surface depths",
    "fusion": "depth fusion",
}


class StageBars:
    """The export's progress(stage, done, total) callback as one ProgressBar per stage."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: Optional[str] = None
        self.bar: Optional[ProgressBar] = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = ProgressBar(STAGES.get(stage, stage), total=total, enabled=self.enabled, line_interval_s=5.0)
            self.bar.__enter__()
        self.bar.update(done - self.bar.completed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def export_command(
    run_path: RunArgument = None,
    config: ConfigOption = None,
    data: DataOption = None,
    what: Annotated[
        Optional[str],
        typer.Option(
            "--what", help="mesh (a coloured triangle mesh) or pointcloud (the training views' surface points)."
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="The PLY file. Default: <run>/export/<what>.ply.")
    ] = None,
    method: Annotated[
        Optional[str],
        typer.Option(
            "--method",
            help="fusion (the training views' surface depths, checked against each other and fused) "
            "or density (a level set of the density; --threshold, --keep-all).",
        ),
    ] = None,
    surface_opacity: Annotated[
        Optional[float],
        typer.Option("--surface-opacity", help="fusion: accumulated opacity along a ray that marks its surface."),
    ] = None,
    min_views: Annotated[
        Optional[int],
        typer.Option("--min-views", help="fusion: views that must agree with a point or mesh piece to keep it."),
    ] = None,
    min_size: Annotated[
        Optional[float],
        typer.Option("--min-size", help="fusion: smallest mesh piece kept, as a share of the scene box's diagonal."),
    ] = None,
    grid: Annotated[
        Optional[int],
        typer.Option(
            "--grid",
            help="Grid points along the longest side of the scene's box (the older --resolution still works).",
        ),
    ] = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold", help="mesh: density of the surface. Default: chosen from the density histogram (printed)."
        ),
    ] = None,
    keep_all: Annotated[
        Optional[bool], typer.Option("--keep-all", help="mesh: keep every piece, not only the largest connected one.")
    ] = None,
    min_acc: Annotated[
        Optional[float],
        typer.Option("--min-acc", help="pointcloud: least accumulated opacity of a pixel that gives a point."),
    ] = None,
    neighbours: Annotated[
        Optional[int], typer.Option("--neighbours", help="pointcloud: k nearest neighbours of the outlier removal.")
    ] = None,
    std_ratio: Annotated[
        Optional[float],
        typer.Option(
            "--std-ratio", help="pointcloud: drop points whose mean k-NN distance is above mean + STD_RATIO std."
        ),
    ] = None,
    chunk: Annotated[
        Optional[int],
        typer.Option("--chunk", help="Points or rays per forward pass; lower it if the device runs out of memory."),
    ] = None,
    device: DeviceOption = None,
    cpu_threads: CpuThreadsOption = None,
    progress: ProgressOption = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
    resolution: Annotated[
        Optional[int], typer.Option("--resolution", hidden=True, help="The older spelling of --grid.")
    ] = None,
) -> None:
    """Export the geometry of RUN's trained model: a coloured mesh or point cloud as a PLY file."""
    from mipnerf_cli.export.geometry import export_geometry
    from mipnerf_cli.settings import ExportSettings

    flags = dict(
        data=data, what=what, out=out, method=method, surface_opacity=surface_opacity,
        min_views=min_views, min_size=min_size, grid=one_of(("--grid", grid), ("--resolution", resolution)),
        threshold=threshold, keep_all=keep_all, min_acc=min_acc, neighbours=neighbours, std_ratio=std_ratio,
        chunk=chunk, device=device, cpu_threads=cpu_threads, progress=progress,
    )  # fmt: skip
    settings = run_settings(ExportSettings, config, flags, run_path, run, ckpt)
    with StageBars(settings.progress) as bars:
        result = export_geometry(
            settings, progress=bars, grid_flag="--resolution" if resolution is not None else "--grid"
        )  # messages name the spelling typed
    if result.method == "fusion":
        if result.what == "mesh":
            info(
                f"mesh: {result.num_vertices:,} vertices, {result.num_faces:,} faces; {result.pieces} pieces, "
                f"{result.floaters} floaters dropped ({result.removed:,} vertices)"
            )
        else:
            info(f"point cloud: {result.num_vertices:,} points ({result.floaters:,} floaters dropped)")
    elif result.what == "mesh":
        low, high = result.density_range
        how = "chosen from the density histogram" if result.threshold_chosen else "given"
        info(f"density on the {settings.grid}³ grid: {low:.4g} to {high:.4g}; threshold {result.threshold:.4g} ({how})")
        pieces = f"{result.pieces} pieces" + (
            ""
            if settings.keep_all or result.pieces <= 1
            else f", kept the largest ({result.removed:,} vertices dropped)"
        )
        info(f"mesh: {result.num_vertices:,} vertices, {result.num_faces:,} faces ({pieces})")
    else:
        info(f"point cloud: {result.num_vertices:,} points ({result.removed:,} outliers removed)")
    info(f"wrote {result.path}")
