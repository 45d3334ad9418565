"""What `mipnerf bench` measures: training and rendering throughput, FLOP rates, MFU, memory.

The workload is the one of the anchor script (shared/bench/anchor_mipnerf_pl.py), so the
two can be compared side by side: rays from cameras on a sphere of radius 4 looking at
random points near the origin, near 2, far 6, Adam at lr 5e-4, randomized sampling, white
background, the loss of both levels (coarse x0.1); rendering is deterministic in chunks.
Training goes through the trainer's own `train_step` and rendering through
`core.render.render_rays`, so the numbers are those of the real code paths.

FLOPs are matmul FLOPs (2 * in * out per Dense layer per sample) of the reference layer
layout, from the config's layer shapes; a training step costs 3x the forward (forward,
input gradients, weight gradients); a rendered ray the forward of every level (the model's
FLOPs, whatever our renderer skips). Peak rates are measured, not taken from a data sheet.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from mipnerf_cli.core.model import ModelConfig
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.runtime import Runtime, resolve

ANCHOR_RADIUS = 4.0
NEAR, FAR = 2.0, 6.0
# Blender's 800-pixel camera (focal 1111): the anchor's cone radius at distance 1.
ANCHOR_RAY_RADIUS = 0.5 / 1111.0 * 2 / 12**0.5


# ----------------------------------------------------------------------------- FLOP count


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    name: str
    in_features: int
    out_features: int

    @property
    def flops(self) -> int:
        return 2 * self.in_features * self.out_features


def dense_layers(config: ModelConfig) -> list[DenseLayer]:
    """The Dense layers one sample passes through, in the reference's order and widths."""
    point = config.point_features
    layers, width = [], point
    for i in range(config.netdepth):
        layers.append(DenseLayer(f"trunk{i}", width, config.netwidth))
        skips = i % config.skip_layer == 0 and i > 0
        width = config.netwidth + (point if skips else 0)
    layers.append(DenseLayer("density", width, 1))
    if config.use_viewdirs:
        layers.append(DenseLayer("bottleneck", width, config.netwidth))
        width = config.netwidth + config.view_features
        for i in range(config.netdepth_condition):
            layers.append(DenseLayer(f"condition{i}", width, config.netwidth_condition))
            width = config.netwidth_condition
    layers.append(DenseLayer("rgb", width, 3))
    return layers


@dataclasses.dataclass(frozen=True)
class FlopCount:
    forward_per_sample: int  # the whole MLP once
    samples_per_ray: int  # num_samples * num_levels

    @property
    def forward_per_ray(self) -> int:
        return self.forward_per_sample * self.samples_per_ray

    @property
    def train_per_ray(self) -> int:
        return 3 * self.forward_per_ray

    @property
    def render_per_ray(self) -> int:
        return self.forward_per_ray


def model_flops(config: ModelConfig) -> FlopCount:
    """Matmul FLOPs of the model (paper config: 1.22 MFLOP per sample, 0.94 GFLOP per trained ray)."""
    per_sample = sum(layer.flops for layer in dense_layers(config))
    return FlopCount(per_sample, config.num_samples * config.num_levels)


# ----------------------------------------------------------------------------- workload


def anchor_rays(num_rays: int, seed: int, device: torch.device | str = "cpu") -> RayBundle:
    """The anchor's rays: cameras on a sphere of radius 4 aimed at random points in [-1, 1]^3."""
    generator = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * ANCHOR_RADIUS
    target = (torch.rand(num_rays, 3, generator=generator) - 0.5) * 2.0
    directions = target - origins
    viewdirs = directions / directions.norm(dim=-1, keepdim=True)
    ones = torch.ones(num_rays, 1)
    rays = RayBundle(
        origins=origins, directions=directions, viewdirs=viewdirs, radii=ones * ANCHOR_RAY_RADIUS,
        near=ones * NEAR, far=ones * FAR, lossmult=ones,
    )  # fmt: skip
    return rays.to(device)


# ----------------------------------------------------------------------------- memory


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


# ----------------------------------------------------------------------------- matmul peak


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(m: int, k: int, n: int, device: torch.device, min_seconds: float = 0.5, dtype=torch.float32) -> float:
    """Best GFLOP/s of (m x k) @ (k x n) over repeated trials of at least min_seconds in all.

    A trial on a CPU is one matmul timed by the host clock. On CUDA a host clock around one
    kernel of a few microseconds measures launch and synchronisation, not the kernel (MFU
    came out above 100 %): a trial there is a run of back-to-back matmuls (about 20 ms)
    timed by CUDA events on the stream.
    """
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    _sync(device)
    reps = 1
    if device.type == "cuda":
        reps = max(1, int(0.02 / max(_trial_seconds(a, b, out, 10), 1e-9)) * 10)
    best, spent = math.inf, 0.0
    while spent < min_seconds or best == math.inf:
        elapsed = _trial_seconds(a, b, out, reps)
        best, spent = min(best, elapsed / reps), spent + elapsed
    return 2.0 * m * k * n / best / 1e9


def _trial_seconds(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, reps: int) -> float:
    """Seconds of `reps` back-to-back a @ b: CUDA events on a GPU, the host clock on a CPU."""
    if a.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    tic = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    return time.perf_counter() - tic


def concurrent_matmul_rate(m: int, k: int, n: int, workers: int, min_seconds: float = 0.5) -> float:
    """CPU only: GFLOP/s of `workers` threads each running single-threaded matmuls at once
    (how the fast path uses the cores): all the threads' FLOPs over the wall time from a
    common start until the last one finishes, best of several trials."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    flops = 2.0 * m * k * n
    single = matmul_rate(m, k, n, torch.device("cpu"), min_seconds=min_seconds / 4)
    reps = max(1, int(0.1 * single * 1e9 / flops))  # about 0.1 s per trial per thread
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        operands = [(torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)) for _ in range(workers)]
        best, spent = 0.0, 0.0
        with ThreadPoolExecutor(workers) as pool:
            while spent < min_seconds or best == 0.0:
                barrier = threading.Barrier(workers + 1)

                def work(index: int) -> None:
                    a, b, out = operands[index]
                    barrier.wait()
                    for _ in range(reps):
                        torch.mm(a, b, out=out)

                futures = [pool.submit(work, i) for i in range(workers)]
                barrier.wait()
                tic = time.perf_counter()
                for future in futures:
                    future.result()
                elapsed = time.perf_counter() - tic
                best, spent = max(best, workers * reps * flops / elapsed / 1e9), spent + elapsed
    finally:
        torch.set_num_threads(previous)
    return best


@dataclasses.dataclass
class MatmulPeaks:
    mlp_shape: tuple[int, int, int]
    mlp_gflops: float
    square_gflops: float  # at square_side^3
    square_side: int = 2048

    @property
    def best_gflops(self) -> float:
        return max(self.mlp_gflops, self.square_gflops)


def measure_matmul_peaks(
    mlp_rows: int, width: int, device: torch.device, workers: int = 1, dtype=torch.float32
) -> MatmulPeaks:
    """The device's matmul rate in `dtype` at the MLP's shape (rows x width x width) and at a
    large square: 2048^3 on a CPU, 8192^3 on CUDA (where 2048^3 leaves a big GPU half idle).

    On a CPU with several workers the better of one multi-threaded matmul and `workers`
    concurrent single-threaded ones counts (the best the cores reach either way).
    """

    def rate(m, k, n):
        best = matmul_rate(m, k, n, device, dtype=dtype)
        if device.type == "cpu" and workers > 1:
            best = max(best, concurrent_matmul_rate(m, k, n, workers))
        return best

    side = 8192 if device.type == "cuda" else 2048
    return MatmulPeaks((mlp_rows, width, width), rate(mlp_rows, width, width), rate(side, side, side), side)


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass
class BenchOptions:
    what: str = "all"  # train | render | all
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    config_name: str = "paper"
    device: str = "cpu"
    batch: int = 256
    chunk: int = 2048
    steps: int = 5
    warmup: int = 1
    fast: bool = True  # the CPU fast path (blocks of rays over worker threads)
    micro_batch: int = 0  # rays per block; 0: the fast path's default
    workers: int = 0  # 0: one per torch thread
    compile: bool = False
    mixed_precision: bool = True  # CUDA only: bf16 autocast (GPUs with native bf16)
    tf32: bool = True  # CUDA only: TF32 matmuls
    peak: bool = True  # measure the matmul peaks
    memory_sizes: tuple[int, ...] = ()  # square image sides to render for the memory check
    memory_chunks: int = 2  # chunks rendered of each image (the peak is reached in the first)


@dataclasses.dataclass
class PhaseResult:
    rays_per_s: float  # total rays / total time of the measured iterations
    rays_per_s_median: float  # median of the per-iteration rates
    samples_per_s: float
    gflops: float  # achieved, from the model's FLOP count
    flops_per_ray: int
    iterations: int
    rays_per_iteration: int
    seconds: float
    peak_memory_bytes: int
    mfu: Optional[float] = None  # achieved / the best measured matmul rate
    mlp_shape_utilisation: Optional[float] = None  # achieved / the matmul rate at the MLP's shape


@dataclasses.dataclass
class BenchResult:
    machine: str
    device: str
    config: str
    torch_version: str
    threads: int
    fast_path: dict[str, Any]
    flops: dict[str, Any]
    matmul_peak: Optional[dict[str, Any]]
    train: Optional[PhaseResult]
    render: Optional[PhaseResult]
    memory: list[dict[str, Any]]
    date: str
    load_average: Optional[list[float]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def _timed(
    iterations: int, warmup: int, step: Callable[[], None], device: torch.device, progress: Callable[[str], None]
) -> list[float]:
    for i in range(warmup):
        progress(f"warm-up {i + 1}/{warmup}")
        step()
        _sync(device)
    times = []
    for i in range(iterations):
        progress(f"{i + 1}/{iterations}")
        tic = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - tic)
    return times


def _phase(times: list[float], rays: int, flops_per_ray: int, samples_per_ray: int, memory: int) -> PhaseResult:
    total = sum(times)
    rate = rays * len(times) / total
    return PhaseResult(
        rays_per_s=rate,
        rays_per_s_median=statistics.median(rays / t for t in times),
        samples_per_s=rate * samples_per_ray,
        gflops=rate * flops_per_ray / 1e9,
        flops_per_ray=flops_per_ray,
        iterations=len(times),
        rays_per_iteration=rays,
        seconds=total,
        peak_memory_bytes=memory,
    )


def _train_settings(options: BenchOptions):
    from mipnerf_cli.settings import ModelSettings, TrainSettings

    fields = TrainSettings.model_fields
    extra = {}
    if "fast_path" in fields:
        extra["fast_path"] = options.fast
    if "fast_micro_batch" in fields and options.micro_batch > 0:
        extra["fast_micro_batch"] = options.micro_batch
    if "fast_workers" in fields:
        extra["fast_workers"] = options.workers
    return TrainSettings(
        batch_size=options.batch, lr_init=5e-4, lr_final=5e-4, lr_delay_steps=0, randomized=True,
        white_bkgd=True, coarse_loss_mult=0.1, mixed_precision=options.mixed_precision, tf32=options.tf32,
        model=ModelSettings(**dataclasses.asdict(options.model)), **extra,
    )  # fmt: skip


def build_model(options: BenchOptions, device: torch.device):
    from mipnerf_cli.core.model import MipNerf

    torch.manual_seed(0)
    model = MipNerf(options.model).to(device)
    return model


def _maybe_compile(model, options: BenchOptions):
    if options.compile:
        model.compile(dynamic=False)  # as the trainer does (settings.compile)
    return model


def bench_runtime(options: BenchOptions, device: torch.device) -> Runtime:
    """The policy bench measures under: the one `mipnerf train` / `eval` resolve from the same switches."""
    return resolve(device, mixed_precision=options.mixed_precision, tf32=options.tf32, fast_path=options.fast)


def bench_train(options: BenchOptions, device: torch.device, progress: Callable[[str], None]) -> PhaseResult:
    from mipnerf_cli import training

    settings = _train_settings(options)
    runtime = bench_runtime(options, device)
    model = build_model(options, device)
    step_model = _maybe_compile(model, options)
    optimizer = training.build_optimizer(model, settings, runtime)
    rays = anchor_rays(options.batch, 1, device)
    pixels = torch.rand(options.batch, 3, generator=torch.Generator().manual_seed(3)).to(device)
    counter = iter(range(1, 1 << 30))

    def step() -> None:
        # As the trainer's loop runs it (step_batch): the sampling noise drawn up front (so a
        # compiled forward sees tensors, not a Generator), the loss read back a step late.
        generator = training.step_generator(0, next(counter), device)
        noise = model.draw_noise((options.batch,), generator, device=device)
        training.train_step(
            step_model,
            optimizer,
            rays,
            pixels,
            5e-4,
            settings,
            None,
            runtime,
            noise=noise,
            defer=runtime.sync_free_step,
        )

    memory = PeakMemory(device)
    memory.start()
    times = _timed(options.steps, options.warmup, step, device, progress)
    flops = model_flops(options.model)
    return _phase(times, options.batch, flops.train_per_ray, flops.samples_per_ray, memory.peak_bytes())


def bench_render(options: BenchOptions, device: torch.device, progress: Callable[[str], None]) -> PhaseResult:
    from mipnerf_cli.core.render import render_rays

    model = build_model(options, device)
    render_model = _maybe_compile(model, options)
    rays = anchor_rays(options.chunk, 2, device)
    render_options = bench_runtime(options, device).render_options(model)

    def step() -> None:
        render_rays(render_model, rays, options.chunk, white_bkgd=True, **render_options)

    memory = PeakMemory(device)
    memory.start()
    times = _timed(options.steps, options.warmup, step, device, progress)
    flops = model_flops(options.model)
    return _phase(times, options.chunk, flops.render_per_ray, flops.samples_per_ray, memory.peak_bytes())


def image_rays(side: int, device: torch.device | str = "cpu") -> RayBundle:
    """The rays of a side x side pinhole image (Blender's 40-degree field of view) from a
    camera at distance 4 on the +z axis looking at the origin."""
    focal = 0.5 * side / math.tan(0.5 * 0.6911112070083618)
    ys, xs = torch.meshgrid(
        torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij"
    )
    directions = torch.stack(
        [(xs + 0.5 - 0.5 * side) / focal, -(ys + 0.5 - 0.5 * side) / focal, -torch.ones_like(xs)], -1
    )
    directions = directions.reshape(-1, 3)
    origins = torch.tensor([0.0, 0.0, ANCHOR_RADIUS]).expand_as(directions).contiguous()
    ones = torch.ones(directions.shape[0], 1)
    radius = 2 / 12**0.5 / focal
    return RayBundle(
        origins=origins, directions=directions, viewdirs=torch.nn.functional.normalize(directions, dim=-1),
        radii=ones * radius, near=ones * NEAR, far=ones * FAR, lossmult=ones,
    ).to(device)  # fmt: skip


def bench_memory(options: BenchOptions, device: torch.device, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Peak memory while rendering square images of options.memory_sizes (first chunks only:
    the chunked renderer's working set is reached in its first chunk; the image's own rays
    and output buffers are allocated whole)."""
    from mipnerf_cli.core.render import render_rays

    model = build_model(options, device)
    results = []
    for side in options.memory_sizes:
        rays = image_rays(side)  # the rays stay on the CPU; render_rays moves one chunk at a time
        rendered = min(len(rays), options.chunk * max(1, options.memory_chunks))
        progress(f"{side}x{side}")
        memory = PeakMemory(device)
        memory.start()
        # render_rays allocates the whole image's outputs; render the first chunks of it.
        out = _render_prefix(render_rays, model, rays, rendered, options, device)
        results.append(
            {
                "image": f"{side}x{side}",
                "rays": len(rays),
                "rays_rendered": rendered,
                "peak_memory_bytes": memory.peak_bytes(),
                "rays_and_outputs_bytes": _bundle_bytes(rays) + out,
                "memory_kind": memory.kind,
            }
        )
    return results


def _bundle_bytes(rays: RayBundle) -> int:
    return sum(t.numel() * t.element_size() for t in rays.tensors().values())


def _render_prefix(render_rays, model, rays: RayBundle, count: int, options: BenchOptions, device) -> int:
    """Render the first `count` rays into whole-image output buffers; returns their size."""
    num = len(rays)
    buffers = {"rgb": torch.zeros(num, 3), "distance": torch.zeros(num), "acc": torch.zeros(num)}
    out = render_rays(
        model,
        rays[:count],
        options.chunk,
        white_bkgd=True,
        **bench_runtime(options, torch.device(device)).render_options(model),
    )
    for key, value in out.items():
        buffers[key][:count] = value
    return sum(t.numel() * t.element_size() for t in buffers.values())


def fast_path_description(options: BenchOptions, device: torch.device) -> dict[str, Any]:
    from mipnerf_cli.core import fast

    runtime = bench_runtime(options, device)
    cpu_fast = runtime.describe()["fast_path"]
    workers = options.workers if options.workers > 0 else fast.default_workers()
    return {
        "enabled": cpu_fast,
        "micro_batch": (options.micro_batch or fast.DEFAULT_MICRO_BATCH) if cpu_fast else None,
        "render_micro_batch": fast.DEFAULT_RENDER_MICRO_BATCH if cpu_fast else None,
        "workers": workers if cpu_fast else None,
        "compile": options.compile,
        "mixed_precision": runtime.autocast_dtype is not None,
        "tf32": runtime.tf32,
    }


def run_bench(options: BenchOptions, progress: Callable[[str, str], None] = lambda phase, message: None) -> BenchResult:
    """Measure what `options.what` asks for; progress(phase, message) reports each iteration."""
    device = torch.device(options.device)
    fast_info = fast_path_description(options, device)
    flops = model_flops(options.model)
    peaks = None
    # MFU is relative to the precision the matmuls run in: bf16 under CUDA autocast, else fp32.
    peak_dtype = bench_runtime(options, device).autocast_dtype or torch.float32
    if options.peak:
        progress("matmul peak", "measuring")
        rows = (fast_info["micro_batch"] or options.batch) * options.model.num_samples
        workers = fast_info["workers"] or 1
        peaks = measure_matmul_peaks(rows, options.model.netwidth, device, workers=workers, dtype=peak_dtype)
    train = render = None
    if options.what in ("train", "all"):
        train = bench_train(options, device, lambda message: progress("train", message))
    if options.what in ("render", "all"):
        render = bench_render(options, device, lambda message: progress("render", message))
    for phase in (train, render):
        if phase is not None and peaks is not None:
            phase.mfu = phase.gflops / peaks.best_gflops
            phase.mlp_shape_utilisation = phase.gflops / peaks.mlp_gflops
    memory = bench_memory(options, device, lambda message: progress("memory", message)) if options.memory_sizes else []
    return BenchResult(
        machine=machine_description(device),
        device=str(device),
        config=options.config_name,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        fast_path=fast_info,
        flops={
            "forward_per_sample": flops.forward_per_sample,
            "samples_per_ray": flops.samples_per_ray,
            "train_per_ray": flops.train_per_ray,
            "render_per_ray": flops.render_per_ray,
            "layers": [dataclasses.asdict(layer) for layer in dense_layers(options.model)],
        },
        matmul_peak=None
        if peaks is None
        else {
            "mlp_shape": list(peaks.mlp_shape),
            "mlp_gflops": peaks.mlp_gflops,
            "square_side": peaks.square_side,
            "square_gflops": peaks.square_gflops,
            "square_2048_gflops": peaks.square_gflops if peaks.square_side == 2048 else None,
            "dtype": str(peak_dtype).replace("torch.", ""),
        },
        train=train,
        render=render,
        memory=memory,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        load_average=load_average(),
    )


# ----------------------------------------------------------------------------- BENCHMARKS.md

MARKDOWN_HEADER = (
    "| machine | config | what | anchor rays/s | ours rays/s | ratio | MFU | date | load | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


def markdown_rows(result: BenchResult, anchor: dict[str, Optional[float]], command: str) -> str:
    """One table row per measured phase (train, render)."""
    rows = []
    for what in ("train", "render"):
        phase: Optional[PhaseResult] = getattr(result, what)
        if phase is None:
            continue
        anchor_rate = anchor.get(what)
        ratio = f"{phase.rays_per_s / anchor_rate:.2f}×" if anchor_rate else "–"
        mfu = f"{100 * phase.mfu:.0f}%" if phase.mfu is not None else "–"
        load = " ".join(f"{x:.1f}" for x in result.load_average) if result.load_average else "–"
        cells = [
            result.machine,
            result.config,
            what,
            f"{anchor_rate:.1f}" if anchor_rate else "–",
            f"{phase.rays_per_s:.1f}",
            ratio,
            mfu,
            result.date[:10],
            load,
            f"`{command}`",
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n")
    return "".join(rows)


def append_markdown(path: Path, rows: str) -> None:
    """Add rows at the end of the results table of path (the table and file made if missing)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    header = MARKDOWN_HEADER.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == header[0].strip()), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += (["\n"] if lines else []) + ["## `mipnerf bench` rows\n", "\n", *header]
        end = len(lines)
    else:
        end = start + 1
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        if not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
    lines[end:end] = rows.splitlines(keepends=True)
    path.write_text("".join(lines), encoding="utf-8")
