"""`mipnerf eval`: score a checkpoint on the test split (PSNR, SSIM, LPIPS when available)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

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
    run_settings,
)
from mipnerf_cli.console import ConsoleReporter, console, info


def eval_command(
    ctx: typer.Context,
    run_path: RunArgument = None,
    config: ConfigOption = None,
    data: DataOption = None,
    scale: Annotated[
        Optional[int],
        typer.Option(
            "--scale",
            help="Resolution levels to score: 1 = full resolution only, 4 = d0..d3 of a "
            "multiscale scene. Default: every level in the data.",
        ),
    ] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Which split to score: test, val or train.")] = None,
    save_image: Annotated[
        Optional[bool],
        typer.Option("--save-image", help="Also write rendered RGB, depth, accumulation and ground truth PNGs."),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="Score only the first K images of each level.")
    ] = None,
    downscale: Annotated[
        Optional[int],
        typer.Option(
            "--downscale",
            help="Blender scenes: score the test images N times smaller. Default: the "
            "run's training downscale (a model trained at 1/8 is scored at 1/8).",
        ),
    ] = None,
    chunk: ChunkOption = None,
    device: DeviceOption = None,
    cpu_threads: CpuThreadsOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: <run>/eval/<step>.")] = None,
    progress: ProgressOption = None,
    nproc: NprocOption = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
) -> None:
    """Render the test images of RUN with its trained model and write <run>/eval/<step>/results.json."""
    from mipnerf_cli.evaluation import evaluate
    from mipnerf_cli.settings import EvalSettings

    flags = dict(
        data=data, scale=scale, split=split, save_image=save_image, limit=limit, downscale=downscale,
        chunk=chunk, device=device, cpu_threads=cpu_threads, out=out, progress=progress,
    )  # fmt: skip
    settings = run_settings(EvalSettings, config, flags, run_path, run, ckpt)
    if nproc is not None and nproc > 1:
        launch.start_torchrun(ctx, nproc, settings.device)
    results, folder = launch.in_process_group(
        settings.device,
        lambda context: evaluate(settings, context=context, report=ConsoleReporter()),
    )
    if results is None:
        return  # another rank than 0: rank 0 reports
    console.print(results_table(results))
    info(nerfbaselines_line(results))
    if not results.lpips_available:
        info(f"LPIPS not computed: {results.lpips_note}")
    info(f"{results.rays_per_second:,.0f} rays/s on {results.device}; results in {folder / 'results.json'}")


def _fmt(value: Optional[float], digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_spread(mean: Optional[float], std: Optional[float], digits: int) -> str:
    return _fmt(mean, digits) if mean is None or std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def nerfbaselines_line(results) -> str:
    """The scores nerfbaselines' protocol gives the same renders (8-bit truncated images), per scale."""
    parts = [
        f"{'' if len(results.scales) == 1 else f'd{s.scale} '}PSNR {_fmt(s.psnr_uint8, 2)}, SSIM {_fmt(s.ssim_uint8, 4)}"
        for s in results.scales
    ]
    return f"nerfbaselines protocol (images truncated to 8 bits): {'; '.join(parts)}"


def results_table(results) -> Table:
    """Per-scale means ± std and their average, as a rich table."""
    table = Table(title=f"{results.exp_name} · step {results.step} · {results.split}")
    for column in ("scale", "size", "images", "PSNR", "SSIM", "LPIPS"):
        table.add_column(column, justify="right")
    for s in results.scales:
        table.add_row(
            f"d{s.scale} (1/{s.factor})",
            f"{s.width}×{s.height}",
            str(s.num_images),
            _fmt_spread(s.psnr, s.psnr_std, 2),
            _fmt_spread(s.ssim, s.ssim_std, 4),
            _fmt(s.lpips, 4),
        )
    if len(results.scales) > 1:
        table.add_row(
            "average",
            "",
            str(sum(s.num_images for s in results.scales)),
            _fmt(results.average.psnr, 2),
            _fmt(results.average.ssim, 4),
            _fmt(results.average.lpips, 4),
        )
    return table
