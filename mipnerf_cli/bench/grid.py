"""`mipnerf bench --config fast`: the grid model's training and rendering throughput, with
its occupancy grid skipping empty space and without (every marching step sampled).

The workload is bench's (bench/workload.py): the anchor's random rays from a sphere of
radius 4 towards [-1, 1]^3 (with unit directions). An untrained model fills the whole cube, so the grid measured
here is a stand-in for a trained one: the cells of a ball of radius 1 occupied (16% of the
cube; lego's trained grid holds 15-20%), the same for every run.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable

import torch

from mipnerf_cli.bench import workload
from mipnerf_cli.core.render import render_rays
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.settings import TrainSettings, TriMipSettings

BALL_RADIUS = 1.0


@dataclasses.dataclass
class GridPhase:
    """One measured phase: rays/s (mean over the iterations), samples/s, samples per ray."""

    phase: str
    grid: str
    rays_per_s: float
    samples_per_s: float
    samples_per_ray: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ball_grid(model) -> None:
    """Mark the cells whose centres lie in the ball of radius BALL_RADIUS occupied, the rest empty."""
    cfg = model.config
    res = cfg.occupancy_resolution
    cells = torch.arange(res**3, device=model.occupied.device)
    index = torch.stack([cells // (res * res), (cells // res) % res, cells % res], dim=-1)
    centres = (index + 0.5) / res * (2 * cfg.bound) - cfg.bound
    model.occupied.copy_(centres.norm(dim=-1) <= BALL_RADIUS)


def run_grid_bench(
    trimip: TriMipSettings,
    runtime: Runtime,
    batch: int,
    chunk: int,
    steps: int,
    warmup: int,
    what: str,
    progress: Callable[[str, str], None] = lambda phase, message: None,
) -> list[GridPhase]:
    """Train and render phases (as `what` asks), each with the stand-in grid and without one."""
    from mipnerf_cli import training
    from mipnerf_cli.core import models

    settings = TrainSettings(
        model_family="trimip", trimip=trimip, batch_size=batch, lr_init=1e-2, lr_final=1e-2, lr_delay_steps=0,
        adam_eps=1e-15, device=runtime.device.type,
    )  # fmt: skip
    config = dataclasses.asdict(trimip.to_model_config())
    rays = _unit_rays(workload.anchor_rays(batch, 1, runtime.device))
    pixels = torch.rand(batch, 3, generator=torch.Generator().manual_seed(2)).to(runtime.device)
    render = _unit_rays(workload.anchor_rays(chunk, 3, runtime.device))
    results = []
    for grid in ("ball", "off"):
        model = models.build("trimip", config, generator=torch.Generator().manual_seed(workload.MODEL_SEED))
        model = model.to(runtime.device)
        with torch.no_grad():
            ball_grid(model) if grid == "ball" else model.clear_occupancy()
        label = "ball of radius 1" if grid == "ball" else "off (all steps)"
        if what in ("train", "all"):
            optimizer = training.build_optimizer(model, settings, runtime)
            per_ray = float(model.samples_per_ray(rays).float().mean())
            seconds = _timed(
                lambda i: training.train_step(model, optimizer, rays, pixels, 1e-2, settings, _gen(i), runtime),
                steps, warmup, lambda i: progress("train", f"grid {grid} {i}"), runtime,
            )  # fmt: skip
            results.append(GridPhase("train", label, batch / seconds, batch * per_ray / seconds, per_ray))
        if what in ("render", "all"):
            per_ray = float(model.samples_per_ray(render).float().mean())
            seconds = _timed(
                lambda i: render_rays(model, render, chunk, True, runtime.device, fast_path=False),
                steps, warmup, lambda i: progress("render", f"grid {grid} {i}"), runtime,
            )  # fmt: skip
            results.append(GridPhase("render", label, chunk / seconds, chunk * per_ray / seconds, per_ray))
    return results


def _unit_rays(rays):
    """The anchor's rays with unit directions, so that near 2 and far 6 bracket the cube as
    they do for a Blender camera at distance 4 (the anchor's directions are ~4 long)."""
    return dataclasses.replace(rays, directions=rays.viewdirs)


def _gen(index: int) -> torch.Generator:
    return torch.Generator().manual_seed(100 + index)


def _timed(run, steps: int, warmup: int, tick, runtime: Runtime) -> float:
    """Mean seconds per iteration of `run(i)` over `steps` after `warmup` unmeasured ones."""
    from mipnerf_cli.bench.peaks import sync

    times = []
    for i in range(warmup + steps):
        tick(i)
        sync(runtime.device)
        tic = time.perf_counter()
        run(i)
        sync(runtime.device)
        if i >= warmup:
            times.append(time.perf_counter() - tic)
    return statistics.fmean(times)
