"""`mipnerf train`: train mip-NeRF on a scene, or continue a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.commands.launch import NprocOption
from mipnerf_cli.commands.options import DeviceOption
from mipnerf_cli.console import ConsoleReporter


def train_command(
    ctx: typer.Context,
    scene: Annotated[
        Optional[str],
        typer.Option("--scene", help="Scene name, looked up as <data-root>/nerf_synthetic/NAME (or multiscale/NAME)."),
    ] = None,
    multiscale: Annotated[
        Optional[bool],
        typer.Option("--multiscale/--single-scale", help="Train on a converted multiscale scene (`mipnerf convert`)."),
    ] = None,
    config: Annotated[
        Optional[str],
        typer.Option(
            "--config",
            help="Settings yaml: a file, or a packaged config name (demo, lego, lego-multiscale, lego-cpu, fast: "
            "the grid model). "
            "Flags override it; relative paths inside it are relative to the file.",
        ),
    ] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Scene folder (instead of --scene).")] = None,
    data_root: Annotated[
        Optional[Path],
        typer.Option(
            "--data-root", help="Folder holding nerf_synthetic/ and multiscale/ (env MIPNERF_DATA; default ./data)."
        ),
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out-dir", help="Runs go to OUT_DIR/EXP_NAME (default: out).")
    ] = None,
    exp_name: Annotated[Optional[str], typer.Option("--exp-name", help="Run name (default: the scene's name).")] = None,
    downscale: Annotated[
        Optional[int],
        typer.Option("--downscale", help="Train on images N times smaller (Blender scenes), e.g. 8 for lego on a CPU."),
    ] = None,
    factor: Annotated[
        Optional[int],
        typer.Option("--factor", help="Captures: read images_FACTOR/ (0: images/), e.g. 4 as the reference."),
    ] = None,
    spherify: Annotated[
        Optional[bool],
        typer.Option(
            "--spherify/--no-spherify",
            help="Captures: a 360° scene (spherified poses, no NDC) or a forward-facing one (NDC). "
            "Default: the scene's kind (recorded by `mipnerf convert`, else detected from the camera "
            "layout of a transforms.json or COLMAP model; a plain poses_bounds.npy: forward-facing).",
        ),
    ] = None,
    max_steps: Annotated[
        Optional[int], typer.Option("--max-steps", help="Train up to this step (default: 1,000,000).")
    ] = None,
    max_minutes: Annotated[
        Optional[float],
        typer.Option(
            "--max-minutes",
            help="Stop after M minutes of training (all sessions of the run; start-up and validation not "
            "counted), save and exit 0; run again with a larger M or with --max-steps to continue.",
        ),
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Rays per step (default: 4096).")] = None,
    check_interval: Annotated[
        Optional[int],
        typer.Option("--check-interval", help="Steps between checkpoints and validation (default: 10,000)."),
    ] = None,
    resume: Annotated[
        Optional[str],
        typer.Option(
            "--resume",
            help="auto: continue this run from its last good checkpoint (the default); PATH: start from that "
            "checkpoint file or run folder; none: start fresh (refused if the run has checkpoints).",
        ),
    ] = None,
    device: DeviceOption = None,
    no_integration: Annotated[
        bool,
        typer.Option(
            "--no-integration",
            help="Point samples, the anti-aliasing ablation: NeRF mode (plain positional encoding) for the paper "
            "model, level-0 lookups without footprint prefiltering for the grid model (--config fast).",
        ),
    ] = False,
    seed: Annotated[
        Optional[int], typer.Option("--seed", help="Seed of the initial weights, batches and sampling noise.")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar (plain lines when not a terminal).")
    ] = True,
    nproc: NprocOption = None,
) -> None:
    """Train mip-NeRF; writes OUT_DIR/EXP_NAME/{config.yaml, ckpt/, metrics.jsonl}.

    Ctrl+C saves a checkpoint and exits (130); run the same command again to continue.
    Under torchrun (or with --nproc N) the batch is split over the processes: --batch-size
    stays the global batch.
    """
    from mipnerf_cli.commands import launch
    from mipnerf_cli.settings import resolve_train_settings
    from mipnerf_cli.training import train

    overrides = {
        "scene": scene,
        "multiscale": multiscale,
        "data": data,
        "data_root": data_root,
        "out_dir": out_dir,
        "exp_name": exp_name,
        "downscale": downscale,
        "factor": factor,
        "spherify": spherify,
        "max_steps": max_steps,
        "max_minutes": max_minutes,
        "batch_size": batch_size,
        "check_interval": check_interval,
        "resume_path": resume,
        "device": device,
        "seed": seed,
        "model": {"disable_integration": True} if no_integration else None,
        "trimip": {"prefilter": False} if no_integration else None,
    }
    settings = resolve_train_settings(config, overrides)
    if nproc is not None and nproc > 1:
        launch.start_torchrun(ctx, nproc, settings.device, batch_size=settings.batch_size)
    result = launch.in_process_group(
        settings.device,
        lambda context: train(settings, context=context, report=ConsoleReporter(), show_progress=progress),
    )
    if result.exit_code:
        raise typer.Exit(result.exit_code)
