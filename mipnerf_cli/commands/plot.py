"""`mipnerf plot`: draw a run's quality curve to a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.options import CkptOption, ConfigOption, RunArgument, RunOption, run_settings
from mipnerf_cli.console import info
from mipnerf_cli.errors import MipNerfError


def plot_command(
    run_path: RunArgument = None,
    config: ConfigOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG to write. Default: RUN/quality.png.")] = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
) -> None:
    """Plot test-view PSNR (and training PSNR) of RUN (its metrics.jsonl) against steps and training time."""
    from mipnerf_cli.io.images import write_png
    from mipnerf_cli.plotting import plot_curves, read_metrics
    from mipnerf_cli.settings import PlotSettings

    settings = run_settings(PlotSettings, config, {"out": out}, run_path, run, ckpt)
    run_dir = settings.run if settings.ckpt is None else _run_dir_of(settings.ckpt)
    if not run_dir.is_dir():
        raise MipNerfError(f"{run_dir}: folder not found; give a run folder written by `mipnerf train`")
    curves = read_metrics(run_dir / "metrics.jsonl")
    out = settings.out or run_dir / "quality.png"
    if out.suffix.lower() != ".png":
        raise MipNerfError(f"--out {out}: the plot is a PNG; give a file name ending in .png")
    image = plot_curves(curves, run_dir.resolve().name)
    write_png(out, image[..., ::-1])
    last = (
        f"test PSNR {curves.val_psnr[-1]:.2f} dB at step {curves.val_step[-1]}"
        if curves.val_psnr
        else "no test PSNR yet"
    )
    info(f"{last}; plot written to {out}")


def _run_dir_of(checkpoint: Path) -> Path:
    from mipnerf_cli.runs.trained import run_dir_of

    return run_dir_of(checkpoint)
