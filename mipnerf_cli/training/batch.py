"""A step's batch: its rays, pixels and sampling noise, drawn from (seed, step), on the device."""

from __future__ import annotations

import torch
from torch import nn

from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.data.sampler import sample_batch, step_generator
from mipnerf_cli.distributed import Context
from mipnerf_cli.settings import TrainSettings
from mipnerf_cli.training.shards import Shard, noise_rows, rank_rows
from mipnerf_cli.training.stop import STOP_SIGNALS


def begin_step(
    settings: TrainSettings,
    step: int,
    train_set,
    model: nn.Module,
    device: torch.device,
    context: Context,
    stop_vote: int = 0,
):
    """What every trainer does first at `step` (`mipnerf train`'s loop, the nerfbaselines
    method): the model's per-step hook (`before_step`, e.g. the grid model's occupancy grid,
    deterministic in `step`), then the step's batch (`step_batch`, same arguments and result)."""
    model.before_step(step)
    return step_batch(settings, step, train_set, model, device, context, stop_vote=stop_vote)


def step_batch(
    settings: TrainSettings,
    step: int,
    train_set,
    model: nn.Module,
    device: torch.device,
    context: Context,
    stop_vote: int = 0,
):
    """This rank's rays (RayBundle on `device`), pixels (N, 3), sampling noise and Shard for `step`.

    stop_vote: the STOP_SIGNALS index of the signal this rank has seen (its Shard carries it
    to the other ranks). Everything goes to a GPU in one host->device copy (`to_device`).

    The global batch and its noise are drawn whole from (seed, step) on every rank (a few
    hundred kB; the noise as `MipNerf.draw_noise` draws it for the global batch) and each
    rank keeps its rows, so the rays a rank sees, and their noise, are those a single
    process sees in the same rows. One process: the whole batch, shard None.
    """
    indices = sample_batch(settings.seed, step, train_set.num_pixels, settings.batch_size)
    rays, pixels = train_set.pixel_rays(indices)
    noise = None
    if settings.randomized:
        if hasattr(model, "draw_noise"):
            noise = model.draw_noise(
                (settings.batch_size,), step_generator(settings.seed, step, "noise", device), device=device
            )
        elif context.distributed:
            raise ValueError(
                f"{type(model).__name__} cannot draw its noise up front (draw_noise), which sharding needs"
            )
    if not context.distributed:
        rays, pixels = to_device([rays, pixels], device)
        return rays, pixels, noise, None
    rows = rank_rows(settings.batch_size, context.rank, context.world_size)
    lossmult = torch.ones_like(rays.lossmult) if settings.disable_multiscale_loss else rays.lossmult
    share = lossmult[rows].sum() / lossmult.sum()
    votes = torch.zeros(len(STOP_SIGNALS) - 1)
    if stop_vote:
        votes[stop_vote - 1] = 1.0
    rays, pixels, share, votes = to_device([rays[rows], pixels[rows], share, votes], device)
    return rays, pixels, noise_rows(noise, rows), Shard(context, share, votes)


def to_device(items: list, device: torch.device) -> list:
    """float32 CPU tensors and RayBundles on `device`, in one host->device copy (a pinned
    buffer on CUDA, copied without blocking); on a CPU they are returned as they are."""
    if device.type == "cpu":
        return list(items)
    return packed_copy(items, device)


def packed_copy(items: list, device: torch.device) -> list:
    """`items` (float32 tensors and RayBundles) copied to `device` through one flat buffer;
    each comes back contiguous, with its shape and the same values bit for bit."""
    tensors = []
    for item in items:
        tensors.extend(item.tensors().values() if isinstance(item, RayBundle) else [item])
    flat = torch.cat([t.reshape(-1) for t in tensors])
    if device.type == "cuda":
        flat = flat.pin_memory()
    moved = iter(
        view.view(t.shape)
        for view, t in zip(flat.to(device, non_blocking=True).split([t.numel() for t in tensors]), tensors)
    )
    out = []
    for item in items:
        if isinstance(item, RayBundle):
            out.append(RayBundle(**{name: next(moved) for name in item.tensors()}))
        else:
            out.append(next(moved))
    return out
