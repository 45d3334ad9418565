"""The fp32 matmul kernels a CPU can run the MLP's Dense layers on, and the probe that picks one.

Why: torch's default CPU matmul (`torch.addmm` on strided tensors) is MKL's sgemm; oneDNN
(`torch._C._nn.mkldnn_linear` on tensors in oneDNN's layout) is a second fp32 GEMM in the
same wheel. Which is faster depends on the CPU: on the Intel Xeon hosts measured so far MKL
was as fast or faster; on an AMD EPYC host with AVX-512 oneDNN ran the MLP's shape (65536 x
256 by 256 x 256, 2 threads) at 236 GFLOP/s against MKL's 149. So the fast path measures both
at the model's own shape, once per process (`fastest`), forward for rendering, forward and
backward for training, and runs the faster.

No conversion per call: with oneDNN the activations enter oneDNN's layout once where the MLP
starts (`DenseKernel.enter`) and leave it once where its dense outputs are needed
(`DenseKernel.leave`); every Dense layer and ReLU between works on oneDNN tensors, and
autograd differentiates them (`mkldnn_linear`'s backward is oneDNN's too). The weights stay
the parameters themselves: oneDNN reads a contiguous fp32 weight in place (a view, no copy)
for forward and backward alike, so nothing is converted back for the optimizer or the
checkpoint (a weight converted to oneDNN's layout up front measured no faster).

Numerics: both kernels compute float32 GEMMs; their sums are ordered differently, so
results differ in the last bits (gradients about 1e-6 relative), within the fast path's
tolerances against the plain path. Choosing is deterministic only as far as timing is: a
kernel must win by `MARGIN` to replace MKL, so a machine where the two are close keeps MKL.

Shapes: M rows (samples), K input features, N output features.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from typing import Callable

import torch
from torch import nn

__all__ = [
    "KERNELS", "DenseKernel", "MKL", "ONEDNN", "kernel_named", "onednn_available", "Probe", "probe", "fastest",
    "resolve", "MARGIN", "MIN_PROBE_MACS",
]  # fmt: skip

KERNELS = ("mkl", "onednn")
MARGIN = 1.1  # oneDNN replaces MKL only when at least this much faster in the probe
PROBE_ROUNDS = 5  # interleaved rounds; each kernel's best round counts (robust to a busy machine)
# Below this many multiply-adds per matmul (tiny test models, configs/demo) the kernel hardly
# matters and oneDNN's first use (~1-5 s of primitive set-up) would not pay: MKL, no probe.
MIN_PROBE_MACS = 1 << 22


class DenseKernel:
    """MKL's sgemm through `torch.addmm` on strided tensors (torch's default CPU kernel).

    `enter` / `leave` move activations into / out of the kernel's layout (no-ops here);
    `dense(layer, h, extra)` is layer(cat([h, extra], -1)) without the concatenation;
    `relu_` is an in-place ReLU in the kernel's layout.
    """

    name = "mkl"

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """x: (M, K) strided -> the kernel's layout."""
        return x

    def leave(self, h: torch.Tensor) -> torch.Tensor:
        """h: (M, N) in the kernel's layout -> strided."""
        return h

    def relu_(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu_(h)

    def dense(self, layer: nn.Linear, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """layer(cat([h, extra], -1)), or layer(h) when extra is None.

        h: (M, Kh);  extra: (M, Ke) or None;  returns (M, N). Two chained matmuls; the
        gradient of `extra` is only formed if it requires one.
        """
        if extra is None:
            return torch.addmm(layer.bias, h, layer.weight.t())
        width = h.shape[-1]
        # Out of place: autocast runs `addmm` in bf16 but not the in-place `addmm_`, so an in-place
        # second product would meet a float32 weight with a bf16 buffer (issue 14's crash).
        partial = torch.addmm(layer.bias, extra, layer.weight[:, width:].t())
        return torch.addmm(partial, h, layer.weight[:, :width].t())

    def __repr__(self) -> str:
        return f"<{self.name} kernel>"


class OneDnnKernel(DenseKernel):
    """oneDNN's inner product (`torch._C._nn.mkldnn_linear`) on activations in oneDNN's layout;
    float32 only, CPU only."""

    name = "onednn"

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous().to_mkldnn()

    def leave(self, h: torch.Tensor) -> torch.Tensor:
        return h.to_dense()

    def relu_(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu_(h)

    def dense(self, layer: nn.Linear, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if extra is None:
            return torch._C._nn.mkldnn_linear(h, layer.weight, layer.bias)
        width = h.shape[-1]
        main = torch._C._nn.mkldnn_linear(h, layer.weight[:, :width], layer.bias)
        return main + torch._C._nn.mkldnn_linear(extra, layer.weight[:, width:], None)


MKL = DenseKernel()
ONEDNN = OneDnnKernel()


def kernel_named(name: str) -> DenseKernel:
    """The kernel called `name` ('mkl' or 'onednn'); ValueError for others or an unusable oneDNN."""
    if name == "mkl":
        return MKL
    if name == "onednn":
        if not onednn_available():
            raise ValueError("this torch build has no usable oneDNN (torch.backends.mkldnn)")
        return ONEDNN
    raise ValueError(f"unknown matmul kernel {name!r}; expected one of {', '.join(KERNELS)}")


@functools.lru_cache(maxsize=None)
def onednn_available() -> bool:
    """Whether oneDNN runs a float32 Dense layer here (built in and working)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.ones(2, 3).to_mkldnn()
        return bool(torch._C._nn.mkldnn_linear(x, torch.ones(4, 3), torch.zeros(4)).to_dense().eq(3).all())
    except RuntimeError:
        return False


@dataclasses.dataclass(frozen=True)
class Probe:
    """One probe's timings: the best seconds of each kernel for a Dense layer of (M, K) x (K, N)
    (+ bias, ReLU), forward alone and forward + backward, on `threads` torch threads."""

    shape: tuple[int, int, int]
    threads: int
    forward_s: dict[str, float]
    train_s: dict[str, float]

    def choice(self, train: bool) -> str:
        """The kernel to run: oneDNN where it beat MKL by MARGIN, else MKL."""
        seconds = self.train_s if train else self.forward_s
        if "onednn" in seconds and seconds["onednn"] * MARGIN < seconds["mkl"]:
            return "onednn"
        return "mkl"

    def gflops(self) -> dict[str, dict[str, float]]:
        """GFLOP/s of each kernel: {'forward': {...}, 'train': {...}} (train counts 3 GEMMs)."""
        m, k, n = self.shape
        flops = 2.0 * m * k * n
        return {
            "forward": {name: flops / s / 1e9 for name, s in self.forward_s.items()},
            "train": {name: 3 * flops / s / 1e9 for name, s in self.train_s.items()},
        }

    def describe(self) -> dict:
        """Plain values (bench's JSON)."""
        return {
            "shape": list(self.shape),
            "threads": self.threads,
            "gflops": self.gflops(),
            "train": self.choice(train=True),
            "render": self.choice(train=False),
        }


def _layer_step(kernel: DenseKernel, layer: nn.Linear, x: torch.Tensor, grad: torch.Tensor, train: bool) -> float:
    """Seconds of one Dense + ReLU on x (already in the kernel's layout), with its backward."""
    tic = time.perf_counter()
    if train:
        out = kernel.relu_(kernel.dense(layer, x))
        torch.autograd.backward(out, grad)
    else:
        with torch.inference_mode():
            kernel.relu_(kernel.dense(layer, x))
    return time.perf_counter() - tic


def probe(rows: int, in_features: int, out_features: int, threads: int = 1) -> Probe:
    """Time both kernels on a (rows, in) x (in, out) Dense + ReLU, forward and forward + backward,
    in PROBE_ROUNDS interleaved rounds on `threads` torch threads (restored afterwards).

    About 30 layer evaluations per kernel: ~0.1-0.3 s at the paper MLP's 2048-row blocks.
    Gradients are on for it whatever the caller's mode: the first render of a viewer or an
    eval (under no_grad or inference_mode) may be what asks for the probe.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _probe(rows, in_features, out_features, threads)


def _probe(rows: int, in_features: int, out_features: int, threads: int) -> Probe:
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, in_features, generator=generator) * in_features**-0.5)
    x = torch.randn(rows, in_features, generator=generator)
    kernels = [MKL] + ([ONEDNN] if onednn_available() else [])
    # Inputs that want a gradient: a trunk layer's backward forms both dX and dW.
    inputs = {kernel.name: kernel.enter(x).detach().requires_grad_() for kernel in kernels}
    grads = {kernel.name: kernel.enter(torch.ones(rows, out_features)) for kernel in kernels}
    forward = {kernel.name: float("inf") for kernel in kernels}
    train = dict(forward)
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        for round_ in range(PROBE_ROUNDS + 1):  # round 0 warms up (first calls build primitives)
            for kernel in kernels:
                for table, is_train in ((forward, False), (train, True)):
                    seconds = min(
                        _layer_step(kernel, layer, inputs[kernel.name], grads[kernel.name], is_train) for _ in range(2)
                    )
                    if round_:
                        table[kernel.name] = min(table[kernel.name], seconds)
                layer.zero_grad(set_to_none=True)
                inputs[kernel.name].grad = None
    finally:
        torch.set_num_threads(previous)
    return Probe((rows, in_features, out_features), max(1, threads), forward, train)


_probes: dict[tuple[int, int, int, int], Probe] = {}
_probes_lock = threading.Lock()


def fastest(rows: int, in_features: int, out_features: int, threads: int = 1) -> Probe:
    """The probe of this shape and thread count: measured on the first call in this process,
    the same answer afterwards (so a process never switches kernels midway)."""
    key = (rows, in_features, out_features, max(1, threads))
    with _probes_lock:
        if key not in _probes:
            _probes[key] = probe(*key)
        return _probes[key]


def resolve(name: str, shape: Callable[[], tuple[int, int, int]], threads: int, train: bool) -> DenseKernel:
    """The kernel `name` asks for: 'mkl' or 'onednn' as named, 'auto' the probe's choice at
    shape() (M, K, N) on `threads` threads (MKL without a probe below MIN_PROBE_MACS)."""
    if name != "auto":
        return kernel_named(name)
    rows, in_features, out_features = shape()
    if rows * in_features * out_features < MIN_PROBE_MACS or not onednn_available():
        return MKL
    return kernel_named(fastest(rows, in_features, out_features, threads=threads).choice(train))
