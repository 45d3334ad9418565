"""Several ranks (torchrun) sharing one step of the global batch.

Every rank draws the whole step's pixels and noise from (seed, step) and takes its rows
(:func:`rank_rows`); each rank's loss is weighted by its share of the batch's lossmult sum
(:class:`Shard`), so the averaged gradient is the one of the global batch and W ranks follow
the 1-process trajectory up to float summation order.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn

from mipnerf_cli.distributed import Context
from mipnerf_cli.runtime import Runtime


def rank_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous rows of a global batch (batch_size divisible by world_size)."""
    share = batch_size // world_size
    return slice(rank * share, (rank + 1) * share)


def rank_slice(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s contiguous share of the global batch (batch divisible by world_size)."""
    return indices[rank_rows(indices.shape[0], rank, world_size)]


def noise_rows(noise: list[dict[str, torch.Tensor]] | None, rows: slice) -> list[dict[str, torch.Tensor]] | None:
    """The rows of a batch's pre-drawn sampling noise (`MipNerf.draw_noise`) that a rank uses."""
    if noise is None:
        return None
    return [{key: value[rows] for key, value in level.items()} for level in noise]


@dataclasses.dataclass(frozen=True)
class Shard:
    """How one of several ranks takes part in a step of the global batch.

    share: this rank's sum(lossmult) over the global batch's sum(lossmult). Each rank's loss
      is normalised by its own lossmult sum, so the global loss is the sum of the ranks'
      losses times their shares (not their mean: the sums differ between ranks).

    A model wrapped in DistributedDataParallel has its gradients averaged during backward;
    a plain model (the CPU fast path evaluates the plain MipNerf block by block, out of DDP's
    reach) has them summed after it by :func:`_sum_weighted_gradients`.
    """

    context: Context
    share: torch.Tensor  # () float32 on the model's device
    # (len(STOP_SIGNALS) - 1,) float32 on the model's device: 1 where this rank saw that
    # signal; summed with the loss terms (one all-reduce), so no collective of its own.
    stop_votes: Optional[torch.Tensor] = None


def _sum_weighted_gradients(parameters: list[nn.Parameter], shard: Shard) -> None:
    """grad <- sum over ranks of share * grad, in one flat all-reduce (what DDP does in buckets)."""
    grads = [p.grad for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads]).mul_(shard.share)
    shard.context.all_reduce_sum_(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def wrap_for_ranks(model: nn.Module, runtime: Runtime, context: Context) -> nn.Module:
    """The module the steps run: the model itself, or its DistributedDataParallel wrapper.

    The CPU fast path evaluates the plain model block by block, which DDP's backward hooks
    cannot follow; there the ranks start from rank 0's weights and train_step sums the
    gradients itself. Checkpoints always take the plain model's state_dict.
    """
    if not context.distributed:
        return model
    device = runtime.device
    if runtime.uses_fast_path(model):
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
