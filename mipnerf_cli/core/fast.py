"""The fast CPU path: a batch of rays evaluated in cache-sized blocks, spread over worker threads.

Why: on a CPU the MLP's matmuls run near the machine's peak only while their operands stay
in cache. A 256-ray batch is 32768 samples per level, 32 MiB per activation, so every
elementwise op and every matmul streams from memory; 16 rays (2048 samples, 2 MiB) stay in
the caches from the forward pass through the backward pass. Every ray is independent of the
others until the loss, which is a sum over rays, so the batch's gradient is the sum of the
blocks' gradients. Blocks are dealt to `workers` threads, each running single-threaded
kernels (no barrier after each op, so one preempted thread does not stall the other on a
busy machine), and summed in a fixed order: results are deterministic for a given
(micro_batch, workers).

Same results as the plain path within float rounding: every random number is drawn for the
whole batch first, in the plain path's order (`RadianceField.draw_noise`), and each block takes its
rays' slice.

Nothing here is process-wide state: the worker threads belong to a `WorkerPool` that the
caller owns (`runtime.Runtime` holds one per command and closes it; without one, a call starts
and joins its own threads), and glibc's allocator is tuned by `keep_freed_memory` only when
`runtime.Runtime.apply()` asks for it. The one exception is the MLP's matmul kernel (MKL or
oneDNN, `FastOptions.kernel`): 'auto' is probed once per process and shape (`core.kernels`),
so a process never switches kernels midway.

Shapes: N rays; every function here takes flat (N,) ray batches.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch

from mipnerf_cli.core import kernels, losses
from mipnerf_cli.core.models.base import LevelOutput, RadianceField
from mipnerf_cli.core.rays import RayBundle

__all__ = [
    "FastOptions", "WorkerPool", "forward_backward", "render_last_level", "keep_freed_memory", "default_workers",
    "kernel_for", "train_kernel_name",
]  # fmt: skip

DEFAULT_MICRO_BATCH = 16  # rays per block when training: 2048 samples per level at 128 samples
DEFAULT_RENDER_MICRO_BATCH = 32  # no activations are kept for a backward pass, so twice as many


class WorkerPool:
    """The threads the fast path deals blocks to: one executor per worker count, started on
    first use and joined by `close()` (or at the end of a `with` block). Reusable after close."""

    def __init__(self) -> None:
        self._executors: dict[int, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def map(self, job: Callable, items: list) -> list:
        """[job(item) for item in items], one item per thread."""
        with self._lock:
            executor = self._executors.get(len(items))
            if executor is None:
                executor = ThreadPoolExecutor(len(items), thread_name_prefix="mipnerf-fast")
                self._executors[len(items)] = executor
        return list(executor.map(job, items))

    def close(self) -> None:
        """Join every thread this pool started."""
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.shutdown(wait=True)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class FastOptions:
    """How the fast path splits a batch. workers 0: one per torch CPU thread. pool: the threads
    to use (None: each call starts and joins its own). kernel: the MLP's matmul kernel, 'mkl',
    'onednn' or 'auto' (the faster at the model's shape, probed once per process: `core.kernels`)."""

    micro_batch: int = DEFAULT_MICRO_BATCH
    workers: int = 0
    pool: WorkerPool | None = dataclasses.field(default=None, compare=False)
    kernel: str = "auto"

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else default_workers()


def default_workers() -> int:
    return max(1, torch.get_num_threads())


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS (process-wide;
    `runtime.Runtime.apply()` calls it for a CPU fast-path command; repeating it is harmless).

    Every block allocates and frees the same few MiB-sized activations; by default glibc
    serves such sizes with fresh mmaps, whose first touch page-faults 4 KiB at a time (about
    10% of a training step). Returns whether the setting was applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return libc.mallopt(m_mmap_threshold, 32 << 20) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def _single_threaded_kernels(workers: int):
    """With several workers, each runs single-threaded kernels (restored afterwards)."""
    if workers <= 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def kernel_for(model: RadianceField, options: FastOptions, rays_per_block: int, workers: int, train: bool) -> dict:
    """The `kernel=` keyword of the model's calls on this path ({} for a family without a choice
    of kernel): options.kernel, 'auto' resolved by a probe at the model's matmul shape on the
    threads each worker runs (one with several workers)."""
    shape = model.matmul_shape(rays_per_block)
    if shape is None:
        return {}
    threads = 1 if workers > 1 else torch.get_num_threads()
    return {"kernel": kernels.resolve(options.kernel, lambda: shape, threads, train)}


def train_kernel_name(model: RadianceField, options: FastOptions, num_rays: int) -> str | None:
    """The name of the matmul kernel `forward_backward` runs on a batch of `num_rays` rays with
    `options` ('auto' probed here, as the step would), or None for a family without a choice."""
    micro_batch = max(1, options.micro_batch)
    plan = _blocks(num_rays, micro_batch, options.resolved_workers())
    chosen = kernel_for(model, options, micro_batch, len(plan), train=True)
    return chosen["kernel"].name if chosen else None


def _blocks(num_rays: int, micro_batch: int, workers: int) -> list[list[tuple[int, int]]]:
    """Ray ranges [start, stop) of each worker: contiguous blocks of micro_batch rays, dealt out
    as evenly as possible in order (a fixed assignment, so the summation order is fixed)."""
    bounds = [(start, min(start + micro_batch, num_rays)) for start in range(0, num_rays, micro_batch)]
    workers = max(1, min(workers, len(bounds)))
    share, extra = divmod(len(bounds), workers)
    out, index = [], 0
    for w in range(workers):
        count = share + (1 if w < extra else 0)
        out.append(bounds[index : index + count])
        index += count
    return out


def _run(
    workers_blocks: list[list[tuple[int, int]]], job: Callable[[list[tuple[int, int]]], object], pool: WorkerPool | None
) -> list:
    """job(blocks) for each worker's blocks: in this thread for one worker, else on `pool`'s
    threads (a pool of this call's own when None, joined before returning)."""
    if len(workers_blocks) == 1:
        return [job(workers_blocks[0])]
    if pool is not None:
        return pool.map(job, workers_blocks)
    with WorkerPool() as own:
        return own.map(job, workers_blocks)


def _slice_noise(noise: list[dict[str, torch.Tensor]] | None, start: int, stop: int):
    if noise is None:
        return None
    return [{key: value[start:stop] for key, value in level.items()} for level in noise]


def forward_backward(
    model: RadianceField,
    rays: RayBundle,
    pixels: torch.Tensor,
    lossmult: torch.Tensor,
    *,
    randomized: bool,
    white_bkgd: bool,
    coarse_loss_mult: float,
    generator: torch.Generator | None = None,
    options: FastOptions = FastOptions(),
    noise: list[dict[str, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of a batch and its gradient, accumulated into the parameters' .grad.

    What `mipnerf_loss(model(rays, randomized, white_bkgd, generator, noise), pixels, lossmult,
    coarse_loss_mult)` followed by `loss.backward()` computes, evaluated block by block.

    rays: N rays (flat);  pixels: (N, 3);  lossmult: (N, 1).
    noise: the batch's random numbers drawn beforehand (`RadianceField.draw_noise` for these N rays,
      e.g. a rank's rows of a global batch's noise); drawn from `generator` when None.
    Returns (loss (), level_losses (L,)), detached.
    """
    num_rays = pixels.shape[0]
    if rays.origins.dim() != 2 or len(rays) != num_rays:
        raise ValueError(
            f"the fast path takes a flat batch of rays, got {tuple(rays.origins.shape)} for {num_rays} pixels"
        )
    if randomized and noise is None:
        noise = model.draw_noise((num_rays,), generator, device=rays.origins.device, dtype=rays.origins.dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    mask_sum = lossmult.sum()
    workers = options.resolved_workers()
    plan = _blocks(num_rays, max(1, options.micro_batch), workers)
    kernel = kernel_for(model, options, max(1, options.micro_batch), len(plan), train=True)

    def job(blocks: list[tuple[int, int]]):
        grads: list[torch.Tensor | None] = [None] * len(params)
        loss_sum = level_sums = None
        for start, stop in blocks:
            outputs = model(
                rays[start:stop], randomized=randomized, white_bkgd=white_bkgd,
                noise=_slice_noise(noise, start, stop), **kernel,
            )  # fmt: skip
            # The loss is a sum over rays over the whole batch's lossmult sum: a block's share is
            # its own loss (normalised by its own sum) times its fraction of the batch's sum.
            weight = lossmult[start:stop]
            share = weight.sum() / mask_sum
            loss, level_losses = losses.mipnerf_loss(outputs, pixels[start:stop], weight, coarse_loss_mult)
            block_grads = torch.autograd.grad(loss * share, params, allow_unused=True)
            for i, g in enumerate(block_grads):
                if g is not None:
                    grads[i] = g if grads[i] is None else grads[i].add_(g)
            loss_share = loss.detach() * share
            level_shares = level_losses.detach() * share
            loss_sum = loss_share if loss_sum is None else loss_sum + loss_share
            level_sums = level_shares if level_sums is None else level_sums + level_shares
        return grads, loss_sum, level_sums

    with _single_threaded_kernels(len(plan)):
        results = _run(plan, job, options.pool)
    _, loss, level_losses = results[0]
    for _, loss_sum, level_sums in results[1:]:
        loss, level_losses = loss + loss_sum, level_losses + level_sums
    for i, p in enumerate(params):
        total = None
        for grads, _, _ in results:
            g = grads[i]
            if g is not None:
                total = g if total is None else total + g
        if total is None:
            continue
        p.grad = total if p.grad is None else p.grad + total
    return loss, level_losses


def render_last_level(
    model: RadianceField,
    rays: RayBundle,
    white_bkgd: bool,
    options: FastOptions = FastOptions(micro_batch=DEFAULT_RENDER_MICRO_BATCH),
) -> LevelOutput:
    """The last level of `model(rays, randomized=False, white_bkgd)`, block by block, without
    the earlier levels' colour branch. rays: N rays (flat). Returns rgb (N, 3), distance (N,), acc (N,)."""
    num_rays = len(rays)
    device = rays.origins.device
    rgb = torch.empty(num_rays, 3, dtype=torch.float32, device=device)
    distance = torch.empty(num_rays, dtype=torch.float32, device=device)
    acc = torch.empty(num_rays, dtype=torch.float32, device=device)
    plan = _blocks(num_rays, max(1, options.micro_batch), options.resolved_workers())
    kernel = kernel_for(model, options, max(1, options.micro_batch), len(plan), train=False) if num_rays else {}

    def job(blocks: Sequence[tuple[int, int]]) -> None:
        # Inference mode is per thread: each worker enters it itself.
        with torch.inference_mode():
            for start, stop in blocks:
                out = model.render_last_level(rays[start:stop], white_bkgd, **kernel)
                rgb[start:stop] = out.rgb
                distance[start:stop] = out.distance
                acc[start:stop] = out.acc

    if num_rays:
        with _single_threaded_kernels(len(plan)):
            _run(plan, job, options.pool)
    return LevelOutput(rgb, distance, acc)
