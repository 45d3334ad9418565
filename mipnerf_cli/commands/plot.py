"""`mipnerf plot`: draw a run's quality curve, or several runs' test-view PSNR, to a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.options import CkptOption, ConfigOption, RunOption, run_settings
from mipnerf_cli.console import info
from mipnerf_cli.errors import MipNerfError

RunsArgument = Annotated[
    Optional[list[Path]],
    typer.Argument(
        metavar="RUN [RUN ...]",
        help="Run folders written by `mipnerf train` (or checkpoint files). One: its curves per scale; "
        "several: each run's test-view PSNR against steps and training time in one figure. "
        "The older --run DIR and --ckpt FILE still work (one run).",
        show_default=False,
    ),
]


def plot_command(
    run_paths: RunsArgument = None,
    config: ConfigOption = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="PNG to write. Default: RUN/quality.png (several runs: the first's compare.png)."),
    ] = None,
    run: RunOption = None,
    ckpt: CkptOption = None,
) -> None:
    """Plot test-view PSNR (and training PSNR) of RUN (its metrics.jsonl) against steps and training time;
    with several runs, their test-view PSNR curves together."""
    from mipnerf_cli.io.images import write_png
    from mipnerf_cli.plotting import plot_comparison, plot_curves, read_metrics
    from mipnerf_cli.settings import PlotSettings

    paths = run_paths or []
    first = paths[0] if paths else None
    settings = run_settings(PlotSettings, config, {"out": out, "compare": paths[1:] or None}, first, run, ckpt)
    run_dirs = [settings.run if settings.ckpt is None else _run_dir_of(settings.ckpt)]
    run_dirs += [_run_dir_of(path) if path.is_file() else path for path in settings.compare]
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise MipNerfError(f"{run_dir}: folder not found; give a run folder written by `mipnerf train`")
    default_name = "quality.png" if len(run_dirs) == 1 else "compare.png"
    out = settings.out or run_dirs[0] / default_name
    if out.suffix.lower() != ".png":
        raise MipNerfError(f"--out {out}: the plot is a PNG; give a file name ending in .png")
    named = [(run_dir.resolve().name, read_metrics(run_dir / "metrics.jsonl")) for run_dir in run_dirs]
    if len(named) == 1:
        image = plot_curves(named[0][1], named[0][0])
    else:
        image = plot_comparison(named)
    write_png(out, image[..., ::-1])
    for name, curves in named:
        last = (
            f"test PSNR {curves.val_psnr[-1]:.2f} dB at step {curves.val_step[-1]}"
            if curves.val_psnr
            else "no test PSNR yet"
        )
        info(f"{name}: {last}" if len(named) > 1 else last)
    info(f"plot written to {out}")


def _run_dir_of(checkpoint: Path) -> Path:
    from mipnerf_cli.runs.trained import run_dir_of

    return run_dir_of(checkpoint)
