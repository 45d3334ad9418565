"""The hardware side of bench: matmul peaks (MFU is relative to the highest: the best kernel
measured at the MLP's shape, a large square matmul, and on a CPU the theoretical figure of
`bench.hardware`), the peak memory of a phase, and the machine."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import torch

from mipnerf_cli.bench.hardware import CpuPeak, cpu_peak
from mipnerf_cli.core.kernels import onednn_available


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA; a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _operands(m: int, k: int, n: int, device: torch.device, dtype, kernel: str):
    """(a, b, out, matmul) for one kernel: 'mkl' torch.mm into out; 'onednn' (CPU, float32)
    `mkldnn_linear` on an input already in oneDNN's layout, as the fast path's trunk runs it."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    if kernel == "onednn":
        a, b = a.to_mkldnn(), b.t().contiguous()
        return a, b, out, lambda a, b, out: torch._C._nn.mkldnn_linear(a, b, None)
    return a, b, out, lambda a, b, out: torch.mm(a, b, out=out)


def matmul_rate(
    m: int, k: int, n: int, device: torch.device, min_seconds: float = 0.5, dtype=torch.float32, kernel: str = "mkl"
) -> float:
    """Best GFLOP/s of (m x k) @ (k x n) over repeated trials of at least min_seconds in all,
    through `kernel` ('mkl': torch's default matmul; 'onednn': oneDNN, CPU float32 only).

    A trial on a CPU is one matmul timed by the host clock. On CUDA a host clock around one
    kernel of a few microseconds measures launch and synchronisation, not the kernel (MFU
    came out above 100 %): a trial there is a run of back-to-back matmuls (about 20 ms)
    timed by CUDA events on the stream.
    """
    a, b, out, mm = _operands(m, k, n, device, dtype, kernel)
    mm(a, b, out)
    sync(device)
    reps = 1
    if device.type == "cuda":
        reps = max(1, int(0.02 / max(_trial_seconds(a, b, out, 10, mm), 1e-9)) * 10)
    best, spent = math.inf, 0.0
    while spent < min_seconds or best == math.inf:
        elapsed = _trial_seconds(a, b, out, reps, mm)
        best, spent = min(best, elapsed / reps), spent + elapsed
    return 2.0 * m * k * n / best / 1e9


def _trial_seconds(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, reps: int, mm: Callable) -> float:
    """Seconds of `reps` back-to-back mm(a, b, out): CUDA events on a GPU, the host clock on a CPU."""
    if a.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            mm(a, b, out)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    tic = time.perf_counter()
    for _ in range(reps):
        mm(a, b, out)
    return time.perf_counter() - tic


def concurrent_matmul_rate(
    m: int, k: int, n: int, workers: int, min_seconds: float = 0.5, kernel: str = "mkl"
) -> float:
    """CPU only: GFLOP/s of `workers` threads each running single-threaded matmuls at once
    (how the fast path uses the cores): all the threads' FLOPs over the wall time from a
    common start until the last one finishes, best of several trials."""
    flops = 2.0 * m * k * n
    single = matmul_rate(m, k, n, torch.device("cpu"), min_seconds=min_seconds / 4, kernel=kernel)
    reps = max(1, int(0.1 * single * 1e9 / flops))  # about 0.1 s per trial per thread
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        operands = [_operands(m, k, n, torch.device("cpu"), torch.float32, kernel) for _ in range(workers)]
        best, spent = 0.0, 0.0
        with ThreadPoolExecutor(workers) as pool:
            while spent < min_seconds or best == 0.0:
                barrier = threading.Barrier(workers + 1)

                def work(index: int) -> None:
                    a, b, out, mm = operands[index]
                    barrier.wait()
                    for _ in range(reps):
                        mm(a, b, out)

                futures = [pool.submit(work, i) for i in range(workers)]
                # The clock starts before the barrier lets the workers go: read after it, a main
                # thread descheduled on a busy machine would start it late and inflate the rate
                # (a loaded 2-core Xeon reported 450 GFLOP/s, above the 358 of its rated clock).
                tic = time.perf_counter()
                barrier.wait()
                for future in futures:
                    future.result()
                elapsed = time.perf_counter() - tic
                best, spent = max(best, workers * reps * flops / elapsed / 1e9), spent + elapsed
    finally:
        torch.set_num_threads(previous)
    return best


@dataclasses.dataclass
class MatmulPeaks:
    """The peaks MFU is measured against: the best kernel measured at the MLP's shape, a large
    square matmul, and (CPU) the hardware's theoretical figure; MFU takes the highest."""

    mlp_shape: tuple[int, int, int]
    mlp_by_kernel: dict[str, float]  # GFLOP/s at the MLP's shape of each kernel measured
    square_gflops: float  # at square_side^3, torch's default kernel
    square_side: int = 2048
    hardware: Optional[CpuPeak] = None

    @property
    def mlp_gflops(self) -> float:
        """The best kernel's rate at the MLP's shape."""
        return max(self.mlp_by_kernel.values())

    @property
    def mlp_kernel(self) -> str:
        return max(self.mlp_by_kernel, key=self.mlp_by_kernel.get)

    @property
    def best_gflops(self) -> float:
        return max(self.mlp_gflops, self.square_gflops, self.hardware.gflops if self.hardware else 0.0)

    @property
    def best_source(self) -> str:
        """Which figure best_gflops is."""
        if self.hardware is not None and self.hardware.gflops >= max(self.mlp_gflops, self.square_gflops):
            h = self.hardware
            return f"hardware: {h.cores} cores x {h.fma_units} FMA x {h.vector_bits // 32} lanes x 2 x {h.ghz:.2f} GHz"
        if self.mlp_gflops >= self.square_gflops:
            return f"measured: {self.mlp_kernel} at {'x'.join(map(str, self.mlp_shape))}"
        return f"measured: {self.square_side}^3"

    def describe(self, dtype: torch.dtype) -> dict:
        """The peaks as plain values (the result's `matmul_peak` entry)."""
        return {
            "mlp_shape": list(self.mlp_shape),
            "mlp_gflops": self.mlp_gflops,
            "mlp_kernel": self.mlp_kernel,
            "mlp_by_kernel": dict(self.mlp_by_kernel),
            "square_side": self.square_side,
            "square_gflops": self.square_gflops,
            "square_2048_gflops": self.square_gflops if self.square_side == 2048 else None,
            "hardware": None if self.hardware is None else self.hardware.describe(),
            "best_gflops": self.best_gflops,
            "best_source": self.best_source,
            "dtype": str(dtype).replace("torch.", ""),
        }


def measure_matmul_peaks(
    mlp_rows: int, width: int, device: torch.device, workers: int = 1, dtype=torch.float32
) -> MatmulPeaks:
    """The device's matmul rate in `dtype` at the MLP's shape (rows x width x width) through each
    kernel the fast path may pick (MKL and, on a CPU in float32, oneDNN), at a large square
    (2048^3 on a CPU, 8192^3 on CUDA, where 2048^3 leaves a big GPU half idle), and on a CPU
    the hardware's theoretical fp32 peak (`bench.hardware.cpu_peak`; float32 only).

    On a CPU with several workers the better of one multi-threaded matmul and `workers`
    concurrent single-threaded ones counts (the best the cores reach either way).
    """

    def rate(m, k, n, kernel="mkl"):
        best = matmul_rate(m, k, n, device, dtype=dtype, kernel=kernel)
        if device.type == "cpu" and workers > 1:
            best = max(best, concurrent_matmul_rate(m, k, n, workers, kernel=kernel))
        return best

    on_cpu_fp32 = device.type == "cpu" and dtype == torch.float32
    names = ["mkl"] + (["onednn"] if on_cpu_fp32 and onednn_available() else [])
    by_kernel = {name: rate(mlp_rows, width, width, name) for name in names}
    side = 8192 if device.type == "cuda" else 2048
    hardware = cpu_peak() if on_cpu_fp32 else None
    return MatmulPeaks((mlp_rows, width, width), by_kernel, rate(side, side, side), side, hardware)


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or the process's peak resident set on a CPU.

    On Linux the resident-set peak (VmHWM) is reset at the start of the phase
    (/proc/self/clear_refs), so each phase reports its own peak; elsewhere it is the
    process's peak so far (getrusage).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass

    def peak_bytes(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def load_average() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None
