"""Training batches: which pixels to train on at each step, as a pure function of (seed, step)."""

from __future__ import annotations

import numpy as np
import torch

# Draw from a range far larger than any pixel count and reduce modulo it: torch.randint
# over a range below 2**32 reduces a 32-bit draw modulo the range, which favours some
# pixels by ~2% at lego's 85M pixels; from 2**62 the bias is below 1e-10.
_WIDE_RANGE = 2**62


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU torch.Generator seeded from (seed, step) alone, so that a resumed run or another
    process recreates it exactly. SeedSequence mixes the pair so that neighbouring steps or
    seeds do not give related streams."""
    state = np.random.SeedSequence([seed % 2**64, step % 2**64]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def sample_batch(seed: int, step: int, num_pixels: int, batch_size: int) -> torch.Tensor:
    """(batch_size,) int64 flat pixel indices drawn uniformly with replacement from
    [0, num_pixels): all pixels of all images at once, like the reference's 'all_images'
    batching. The same (seed, step) always gives the same indices."""
    if num_pixels <= 0:
        raise ValueError(f"num_pixels must be positive, got {num_pixels}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    draws = torch.randint(0, _WIDE_RANGE, (batch_size,), generator=step_generator(seed, step), dtype=torch.int64)
    return draws % num_pixels
