"""Chunked, gradient-free rendering of any number of rays with the fine level of a model.

Rendering a whole image at once would need memory proportional to its pixel count times
the samples per ray; here the rays stay where they are (usually the CPU), go to the device
`chunk` at a time, and the results come back into preallocated CPU tensors, so device
memory is flat whatever the image size.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch

from mipnerf_cli.core import fast
from mipnerf_cli.core.fast import WorkerPool
from mipnerf_cli.core.models.base import RadianceField
from mipnerf_cli.core.rays import RayBundle


class RenderStopped(Exception):
    """`should_stop` answered True between two chunks: the render was abandoned (no result)."""


def _last_level(
    model: RadianceField, rays: RayBundle, white_bkgd: bool, fast_path: bool, fast_pool=None, fast_kernel="auto"
):
    """The model's last level for a chunk; with `fast_path` (and a family it pays for) through
    core/fast.py (blocks of rays over CPU worker threads, those of `fast_pool` when given, the
    MLP on `fast_kernel`)."""
    if fast_path and model.supports_fast_path:
        options = fast.FastOptions(micro_batch=fast.DEFAULT_RENDER_MICRO_BATCH, pool=fast_pool, kernel=fast_kernel)
        return fast.render_last_level(model, rays, white_bkgd, options)
    return model.render_last_level(rays, white_bkgd)


@torch.no_grad()
def render_rays(
    model: RadianceField,
    rays: RayBundle,
    chunk: int,
    white_bkgd: bool,
    device: torch.device | str | None = None,
    autocast_dtype: Optional[torch.dtype] = None,
    fast_path: Optional[bool] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    fast_pool: Optional[WorkerPool] = None,
    fast_kernel: str = "auto",
) -> dict[str, torch.Tensor]:
    """Render N rays deterministically (randomized=False) with the model's last level.

    model: any model family (`core.models.RadianceField`).
    rays:  RayBundle of N rays, on any device.
    chunk: rays per forward pass (> 0); bounds the device memory.
    device: where the model runs (default: the device of its first parameter).
    autocast_dtype: None (float32) or the dtype of an autocast around each forward
        (`runtime.Runtime` decides it; bf16 on CUDA by default).
    fast_path: a family that supports it, on a CPU, through core/fast.py (None: whenever the
        device is a CPU and there is no autocast).
    should_stop: asked before every chunk; when it answers True the render raises
        RenderStopped (an exception rather than None, so no caller can take a partial
        result for a whole one), e.g. a stop request (Ctrl+C, SIGTERM) during validation.
    fast_pool: the fast path's worker threads (`runtime.Runtime.pool`; None: each chunk starts
        and joins its own).
    fast_kernel: the fast path's matmul kernel ('auto', 'mkl', 'onednn': `core.kernels`).
    Returns float32 CPU tensors {"rgb": (N, 3), "distance": (N,), "acc": (N,)}.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    if fast_path is None:
        fast_path = device.type == "cpu" and autocast_dtype is None
    autocast = (
        contextlib.nullcontext()
        if autocast_dtype is None
        else torch.autocast(device_type=device.type, dtype=autocast_dtype)
    )
    num_rays = len(rays)
    out = {
        "rgb": torch.empty(num_rays, 3, dtype=torch.float32),
        "distance": torch.empty(num_rays, dtype=torch.float32),
        "acc": torch.empty(num_rays, dtype=torch.float32),
    }
    was_training = model.training
    model.eval()
    try:
        for start in range(0, num_rays, chunk):
            if should_stop is not None and should_stop():
                raise RenderStopped(f"stopped after {start} of {num_rays} rays")
            stop = min(start + chunk, num_rays)
            batch = rays[start:stop].to(device=device, dtype=torch.float32)
            with autocast:
                fine = _last_level(model, batch, white_bkgd, fast_path, fast_pool, fast_kernel)
            out["rgb"][start:stop] = fine.rgb.float().cpu()
            out["distance"][start:stop] = fine.distance.float().cpu()
            out["acc"][start:stop] = fine.acc.float().cpu()
    finally:
        model.train(was_training)
    return out


def render_image(
    model: RadianceField,
    rays: RayBundle,
    height: int,
    width: int,
    chunk: int,
    white_bkgd: bool,
    device: torch.device | str | None = None,
    autocast_dtype: Optional[torch.dtype] = None,
    fast_path: Optional[bool] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    fast_pool: Optional[WorkerPool] = None,
    fast_kernel: str = "auto",
) -> dict[str, torch.Tensor]:
    """`render_rays` for the H*W rays of one image (row-major), reshaped to the image.

    Returns float32 CPU tensors {"rgb": (H, W, 3), "distance": (H, W), "acc": (H, W)}.
    """
    if len(rays) != height * width:
        raise ValueError(f"{len(rays)} rays do not form a {height}x{width} image")
    out = render_rays(
        model,
        rays,
        chunk,
        white_bkgd,
        device=device,
        autocast_dtype=autocast_dtype,
        fast_path=fast_path,
        should_stop=should_stop,
        fast_pool=fast_pool,
        fast_kernel=fast_kernel,
    )
    return {
        "rgb": out["rgb"].view(height, width, 3),
        "distance": out["distance"].view(height, width),
        "acc": out["acc"].view(height, width),
    }
