"""Where and how the engine runs: device, CPU threads, TF32, autocast and the CPU fast path.

One `Runtime` is resolved per command from its settings (`resolve`) and handed to every
piece that computes: the training step, in-training validation, eval, render and bench all
ask it, so one checkpoint is rendered with one precision wherever it is rendered. The rules:

- CPU runs float32 (bf16 autocast crashed some CPUs with SIGILL), through the fast path of
  `core/fast.py` unless `fast_path` is off;
- CUDA runs bf16 autocast when `mixed_precision` is on and the GPU has native bf16
  (compute capability 8.0 or more: Ampere, Hopper; V100/T4 would emulate it slowly, so they
  stay float32); TF32 matmuls are a separate switch, on by default;
- CUDA trains with the sync-free step (`sync_free_step`: fused Adam, the finite check one
  step late) so that the host never waits for the GPU between two steps;
- the process-wide switches (CPU thread count, TF32, glibc's allocator for the fast path)
  are set in one place, `Runtime.apply()`, which `resolve` calls; the fast path's worker
  threads belong to the Runtime (`pool`) and are joined by `close()` (`with runtime:`), or
  when the Runtime is garbage-collected or the process exits;
- `cuda_like` builds the CUDA path's policy on a CPU with native bf16 (AMX / AVX512-BF16), so
  tests can run the CUDA-only branches (autocast, the plain step, the plain render) here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import weakref
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from mipnerf_cli.core.fast import FastOptions, WorkerPool, keep_freed_memory
from mipnerf_cli.errors import MipNerfError

__all__ = ["Runtime", "resolve", "from_settings", "pick_device", "cuda_like", "bf16_supported", "cpu_has_native_bf16"]


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The policy every computation of one command follows."""

    device: torch.device
    autocast_dtype: Optional[torch.dtype] = None  # None: float32; torch.bfloat16: bf16 autocast
    tf32: bool = False  # TF32 matmuls and convolutions (CUDA only)
    fast_path: bool = True  # a model family that supports it, on a CPU: cache-sized blocks of rays over worker threads
    # The GPU's training step, which never waits for the device: fused Adam, told by a device
    # flag to skip a non-finite step, and the loss read back (and checked) one step late.
    sync_free_step: bool = False
    cpu_threads: Optional[int] = None  # torch's CPU thread count (None: torch's choice)
    # The fast path's matmul kernel for the MLP: 'auto' (the faster of MKL and oneDNN at the
    # model's shape, probed once per process: core/kernels.py), 'mkl' or 'onednn'.
    cpu_kernel: str = "auto"
    # The training step's kernel once pinned ('mkl' / 'onednn': what `auto` resolved to, or a
    # resumed run's recorded choice; training.setup.pin_train_kernel); None: `cpu_kernel`.
    # Rendering (validation included) keeps `cpu_kernel`.
    train_kernel: Optional[str] = None
    # The fast path's worker threads, started on first use; joined by close().
    pool: WorkerPool = dataclasses.field(default_factory=WorkerPool, compare=False, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, self.pool.close)  # at garbage collection or exit, whichever is first

    def __enter__(self) -> "Runtime":
        self.apply()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Join the fast path's worker threads (a later fast-path call starts new ones)."""
        self.pool.close()

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of a forward pass (a no-op for float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def uses_fast_path(self, model: nn.Module) -> bool:
        """Whether `model` trains and renders through `core/fast.py` (a family that supports it,
        on a CPU, float32)."""
        supported = bool(getattr(model, "supports_fast_path", False))
        return self.fast_path and self.device.type == "cpu" and self.autocast_dtype is None and supported

    def render_options(self, model: nn.Module) -> dict:
        """The keyword arguments of `core.render.render_rays` / `render_image` under this policy."""
        if not self.uses_fast_path(model):
            return {"device": self.device, "autocast_dtype": self.autocast_dtype, "fast_path": False}
        return {
            "device": self.device, "autocast_dtype": None, "fast_path": True, "fast_pool": self.pool,
            "fast_kernel": self.cpu_kernel,
        }  # fmt: skip

    def fast_options(self, micro_batch: int, workers: int) -> FastOptions:
        """The CPU fast path's options for a training step, on this Runtime's worker threads."""
        return FastOptions(micro_batch, workers, pool=self.pool, kernel=self.train_kernel or self.cpu_kernel)

    def apply(self) -> None:
        """Set the process-wide switches to this policy: torch's CPU thread count (when
        `cpu_threads` is set), the TF32 switches (CUDA only; CPU ignores them) and, for the
        CPU fast path, glibc's allocator (`core.fast.keep_freed_memory`)."""
        if self.cpu_threads is not None:
            torch.set_num_threads(self.cpu_threads)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
            torch.backends.cudnn.allow_tf32 = self.tf32
        elif self.fast_path and self.autocast_dtype is None:
            keep_freed_memory()

    def describe(self) -> dict:
        """The policy as plain values (bench's JSON, logs)."""
        return {
            "device": str(self.device),
            "autocast": None if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch."),
            "tf32": self.tf32,
            "fast_path": self.fast_path and self.device.type == "cpu" and self.autocast_dtype is None,
            "sync_free_step": self.sync_free_step,
            "cpu_kernel": self.cpu_kernel,
        }


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MipNerfError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX-BF16 or AVX512-BF16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 on `device`: compute capability >= 8 on CUDA (not torch's
    `is_bf16_supported`, which counts emulation), AMX/AVX512-BF16 on a CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve(
    device: str | torch.device = "auto",
    cpu_threads: Optional[int] = None,
    mixed_precision: bool = True,
    tf32: bool = True,
    fast_path: bool = True,
    cpu_kernel: str = "auto",
) -> Runtime:
    """The policy of a command from its settings, applied (`Runtime.apply`: thread count, TF32).

    `mixed_precision` and `tf32` only act on CUDA: a CPU command always runs float32.
    """
    chosen = device if isinstance(device, torch.device) else pick_device(device)
    on_cuda = chosen.type == "cuda"
    runtime = Runtime(
        device=chosen,
        autocast_dtype=torch.bfloat16 if on_cuda and mixed_precision and bf16_supported(chosen) else None,
        tf32=on_cuda and tf32,
        fast_path=fast_path,
        sync_free_step=on_cuda,
        cpu_threads=cpu_threads,
        cpu_kernel=cpu_kernel,
    )
    runtime.apply()
    return runtime


def from_settings(settings, device: Optional[torch.device] = None) -> Runtime:
    """The policy of a train / eval / render / bench command from its settings (fields
    `device`, `cpu_threads`, `mixed_precision`, `tf32` and, for training and bench, `fast_path`
    and `cpu_kernel`);
    `device` (a torchrun rank's GPU) overrides the settings' choice."""
    return resolve(
        device if device is not None else settings.device,
        settings.cpu_threads,
        settings.mixed_precision,
        settings.tf32,
        getattr(settings, "fast_path", True),
        getattr(settings, "cpu_kernel", "auto"),
    )


def cuda_like(device: torch.device | str = "cpu") -> Runtime:
    """The CUDA path's policy (bf16 autocast, plain step and render, TF32) on any device, for
    tests; on a CPU only where `cpu_has_native_bf16()` (callers skip elsewhere)."""
    return Runtime(
        device=torch.device(device), autocast_dtype=torch.bfloat16, tf32=True, fast_path=False, sync_free_step=True
    )
