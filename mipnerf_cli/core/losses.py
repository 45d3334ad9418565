"""Training objective, learning-rate schedule and PSNR, as google/mipnerf train.py / math.py."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mipnerf_cli.core.models.mipnerf import LevelOutput

__all__ = ["learning_rate_decay", "mipnerf_loss", "mse_to_psnr"]


def learning_rate_decay(
    step: int,
    lr_init: float,
    lr_final: float,
    max_steps: int,
    lr_delay_steps: int = 0,
    lr_delay_mult: float = 1.0,
) -> float:
    """The reference's schedule: log-linear from lr_init (step 0) to lr_final (max_steps), held after.

    With lr_delay_steps > 0 the rate starts at lr_init * lr_delay_mult and eases back to the
    undelayed curve by step lr_delay_steps (a quarter sine wave).
    """
    if lr_delay_steps > 0:
        delay_rate = lr_delay_mult + (1 - lr_delay_mult) * math.sin(
            0.5 * math.pi * min(max(step / lr_delay_steps, 0.0), 1.0)
        )
    else:
        delay_rate = 1.0
    t = min(max(step / max_steps, 0.0), 1.0)
    log_lerp = math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)
    return delay_rate * log_lerp


def mipnerf_loss(
    outputs: Sequence[LevelOutput],
    pixels: torch.Tensor,
    lossmult: torch.Tensor,
    coarse_loss_mult: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's training loss.

    Args:
      outputs: per level (coarse first), rgb (N, 3).
      pixels: (N, 3) target colours.
      lossmult: (N, 1) per-ray weights (4**level for multiscale data, else 1).
      coarse_loss_mult: weight of every level but the last.
    Returns:
      loss: () coarse_loss_mult * sum(level_losses[:-1]) + level_losses[-1].
      level_losses: (L,) per level sum(lossmult * (rgb - pixels)**2) / sum(lossmult). The
        denominator counts each ray once, not once per channel, so this is 3x the per-channel
        MSE; the reference reports PSNR from exactly these values.
    """
    mask_sum = lossmult.sum()
    level_losses = torch.stack([(lossmult * (out.rgb - pixels[..., :3]) ** 2).sum() / mask_sum for out in outputs])
    loss = coarse_loss_mult * level_losses[:-1].sum() + level_losses[-1]
    return loss, level_losses


def mse_to_psnr(mse: torch.Tensor | float) -> torch.Tensor | float:
    """PSNR in dB for a maximum pixel value of 1: -10 log10(mse). Tensor in, tensor out (same shape)."""
    if isinstance(mse, torch.Tensor):
        return -10.0 / math.log(10.0) * torch.log(mse)
    return -10.0 / math.log(10.0) * math.log(mse) if mse > 0 else math.inf
