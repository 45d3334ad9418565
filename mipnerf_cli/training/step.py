"""One optimisation step: ``train_step(model, optimizer, rays, pixels, lr, ...) -> PendingStats``,
whose ``.get()`` is the step's StepStats.

A step is a pure function of (seed, step, parameters, optimizer state): the batch comes from
``data.sample_batch(seed, step)`` (:mod:`mipnerf_cli.training.batch`) and the stratified
sampling noise from ``data.sampler.step_generator(seed, step, "noise")``. That is why a
checkpoint needs no sampler state and a run killed after any save and resumed ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
from torch import nn

from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.settings import TrainSettings
from mipnerf_cli.training.setup import SkippableAdam
from mipnerf_cli.training.shards import Shard, _sum_weighted_gradients


@dataclasses.dataclass
class StepStats:
    """What one step measured. level_mses: per level (coarse first), the reference's
    loss terms (weighted squared error summed over colour channels per ray)."""

    loss: float
    level_mses: list[float]
    finite: bool
    stop_vote: int = 0  # several ranks: index in STOP_SIGNALS of the latest signal any rank saw


@dataclasses.dataclass
class PendingStats:
    """A step's loss terms on their way back from the device: what `train_step` returns.

    terms: (1 + L + V,) the loss, the L level terms and V stop votes (one per STOP_SIGNALS
    entry after None, summed over the ranks), in host memory (which a non-blocking copy
    fills for the sync-free step);
    event: marks the end of that copy on CUDA (None: the values are there already);
    deferred: a sync-free step (the host has not waited for the device): reading it waits,
    so the loop reads it a step later, once the next step is queued.
    """

    terms: torch.Tensor
    levels: int
    event: Optional["torch.cuda.Event"] = None
    deferred: bool = False

    @staticmethod
    def read_back(terms: torch.Tensor, levels: int) -> "PendingStats":
        """Start copying `terms` to the host without waiting for the device (a deferred read)."""
        if terms.device.type != "cuda":
            return PendingStats(terms.detach().cpu(), levels, deferred=True)
        host = torch.empty(terms.shape, dtype=terms.dtype, pin_memory=True)
        host.copy_(terms.detach(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return PendingStats(host, levels, event, deferred=True)

    def get(self) -> StepStats:
        """The step's stats (waits for the copy, so for the step, to finish)."""
        if self.event is not None:
            self.event.synchronize()
        values = self.terms.tolist()
        return StepStats(
            loss=values[0],
            level_mses=values[1 : 1 + self.levels],
            finite=math.isfinite(values[0]),
            stop_vote=_stop_vote(values[1 + self.levels :]),
        )


def _stop_vote(counts: list[float]) -> int:
    """The largest STOP_SIGNALS index that some rank voted for (counts: ranks per signal after None)."""
    return max((i + 1 for i, count in enumerate(counts) if count > 0), default=0)


def learning_rate(step: int, settings: TrainSettings) -> float:
    """The reference schedule: log-linear lr_init -> lr_final with a sine warm-up."""
    from mipnerf_cli.core.losses import learning_rate_decay

    return float(
        learning_rate_decay(
            step,
            settings.lr_init,
            settings.lr_final,
            settings.max_steps,
            lr_delay_steps=settings.lr_delay_steps,
            lr_delay_mult=settings.lr_delay_mult,
        )
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rays: RayBundle,
    pixels: torch.Tensor,
    lr: float,
    settings: TrainSettings,
    generator: torch.Generator | None,
    runtime: Runtime | None = None,
    noise: list[dict[str, torch.Tensor]] | None = None,
    shard: Shard | None = None,
) -> PendingStats:
    """One optimisation step on a batch.

    rays: RayBundle of B rays; pixels: (B, 3) float32 targets, both on the model's device.
    noise: the batch's sampling noise drawn beforehand (`MipNerf.draw_noise`, B rows), else
    drawn from `generator`. With a `shard`, the rays are this rank's part of a global batch
    and the step (gradient, loss, the finite check) is the global batch's on every rank.
    The optimizer is not stepped when the loss is not finite (StepStats.finite False), so
    the parameters stay as they were. `runtime` decides autocast and the CPU fast path
    (default: float32 on the pixels' device, the fast path and its kernel as `settings.fast_path`
    and `settings.cpu_kernel` say).

    Returns the step's PendingStats; `.get()` reads its StepStats. With `runtime.sync_free_step`
    (CUDA) and a fused Adam (`build_optimizer(..., runtime)`) the host never waits for the
    device: the optimizer gets the non-finite flag as a device tensor and skips the update
    itself, and the stats are `deferred` (reading them waits for the step). Otherwise they are
    on the host already. A Shard's stop votes come back summed in StepStats.stop_vote.
    """
    from mipnerf_cli.core import fast
    from mipnerf_cli.core.losses import mipnerf_loss

    if runtime is None:
        runtime = Runtime(device=pixels.device, fast_path=settings.fast_path, cpu_kernel=settings.cpu_kernel)

    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    lossmult = torch.ones_like(rays.lossmult) if settings.disable_multiscale_loss else rays.lossmult
    wrapped = isinstance(model, nn.parallel.DistributedDataParallel)
    if runtime.uses_fast_path(model):
        # The perf engineer's CPU fast path (core/fast.py): the same loss and gradients.
        loss, level_mses = fast.forward_backward(
            model, rays, pixels, lossmult, randomized=settings.randomized, white_bkgd=settings.white_bkgd,
            coarse_loss_mult=settings.coarse_loss_mult, generator=generator,
            options=runtime.fast_options(settings.fast_micro_batch, settings.fast_workers), noise=noise,
        )  # fmt: skip
    else:
        with runtime.autocast():
            outputs = model(
                rays, randomized=settings.randomized, white_bkgd=settings.white_bkgd, generator=generator, noise=noise
            )
        outputs = [type(level)(*(t.float() for t in level)) for level in outputs]
        loss, level_mses = mipnerf_loss(outputs, pixels, lossmult, coarse_loss_mult=settings.coarse_loss_mult)
        if shard is not None and wrapped:
            # DDP averages the W ranks' gradients; weighting by W * share makes that average
            # the gradient of the global batch's loss.
            (loss * (shard.share * shard.context.world_size)).backward()
        else:
            loss.backward()
    if shard is not None:
        if not wrapped:
            _sum_weighted_gradients([p for p in model.parameters() if p.grad is not None], shard)
        # The global loss terms, on every rank: the finite check and the logs agree everywhere.
        # The stop votes ride along, unweighted: one collective per step for both.
        parts = [torch.cat([loss.detach()[None], level_mses.detach()]) * shard.share]
        if shard.stop_votes is not None:
            parts.append(shard.stop_votes)
        totals = shard.context.all_reduce_sum_(torch.cat(parts))
        loss, level_mses, votes = totals[0], totals[1 : 1 + level_mses.numel()], totals[1 + level_mses.numel() :]
    else:
        votes = loss.new_zeros(0)
    terms = torch.cat([loss.detach()[None], level_mses.detach(), votes.to(loss.dtype)])
    if runtime.sync_free_step and isinstance(optimizer, SkippableAdam) and optimizer.fused:
        return _step_on_device(model, optimizer, terms.float(), level_mses.numel(), settings)
    pending = PendingStats(terms.cpu(), level_mses.numel())
    if not math.isfinite(float(pending.terms[0])):
        return pending
    _clip_gradients(model, settings)
    optimizer.step()
    return pending


def _clip_gradients(model: nn.Module, settings: TrainSettings) -> None:
    parameters = [p for p in model.parameters() if p.grad is not None]
    if settings.grad_max_val > 0:
        torch.nn.utils.clip_grad_value_(parameters, settings.grad_max_val)
    if settings.grad_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(parameters, settings.grad_max_norm)


def _step_on_device(
    model: nn.Module, optimizer: "SkippableAdam", terms: torch.Tensor, levels: int, settings: TrainSettings
) -> PendingStats:
    """Clip and step without reading anything back: the fused optimizer skips the update
    (moments and step count included) when told so by a device flag."""
    _clip_gradients(model, settings)
    optimizer.step(found_inf=(~torch.isfinite(terms[0])).float())
    return PendingStats.read_back(terms, levels)


def psnr_from_level_mse(level_mse: float) -> float:
    """Per-channel PSNR from a reference loss term, which sums the 3 channels per ray.

    The reference logs -10 log10 of the term itself, 4.77 dB below the usual image PSNR;
    dividing by 3 makes training and validation PSNR comparable.
    """
    from mipnerf_cli.core.losses import mse_to_psnr

    return float(mse_to_psnr(level_mse / 3.0))
