"""`run_bench`: the phases `mipnerf bench` measures (train, render, memory) under the command's
one `runtime.Runtime`, through the trainer's step and optimizer and `core.render.render_rays`."""

from __future__ import annotations

import datetime
import statistics
import time
from typing import Any, Callable

import torch

from mipnerf_cli import runtime as runtime_policy
from mipnerf_cli.bench import workload
from mipnerf_cli.bench.flops import flops_summary, model_flops
from mipnerf_cli.bench.peaks import PeakMemory, load_average, machine_description, measure_matmul_peaks, sync
from mipnerf_cli.bench.report import BenchResult, PhaseResult
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.core.render import render_rays
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.settings import BenchSettings

Progress = Callable[[str], None]


def bench_runtime(settings: BenchSettings) -> Runtime:
    """The policy bench measures under: the one `mipnerf train` / `eval` resolve from the same switches."""
    return runtime_policy.from_settings(settings)


def run_bench(
    settings: BenchSettings, progress: Callable[[str, str], None] = lambda phase, message: None
) -> BenchResult:
    """Measure what `settings.what` asks for; progress(phase, message) reports each iteration."""
    with bench_runtime(settings) as runtime:  # its worker threads are joined at the end
        fast_info = fast_path_description(settings, runtime)
        # MFU is relative to the precision the matmuls run in: bf16 under CUDA autocast, else fp32.
        peak_dtype = runtime.autocast_dtype or torch.float32
        peaks = None
        if settings.peak:
            progress("matmul peak", "measuring")
            rows = (fast_info["micro_batch"] or settings.batch) * settings.model.num_samples
            peaks = measure_matmul_peaks(
                rows, settings.model.netwidth, runtime.device, workers=fast_info["workers"] or 1, dtype=peak_dtype
            )
        phases = {}
        for name, bench in (("train", bench_train), ("render", bench_render)):
            if settings.what in (name, "all"):
                phases[name] = bench(settings, runtime, lambda message, name=name: progress(name, message))
                if peaks is not None:
                    phases[name].mfu = phases[name].gflops / peaks.best_gflops
                    phases[name].mlp_shape_utilisation = phases[name].gflops / peaks.mlp_gflops
        memory = bench_memory(settings, runtime, lambda message: progress("memory", message))
    return BenchResult(
        machine=machine_description(runtime.device),
        device=str(runtime.device),
        config=settings.config_name,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        fast_path=fast_info,
        flops=flops_summary(settings.model.to_model_config()),
        matmul_peak=None if peaks is None else peaks.describe(peak_dtype),
        train=phases.get("train"),
        render=phases.get("render"),
        memory=memory,
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        load_average=load_average(),
    )


def bench_train(settings: BenchSettings, runtime: Runtime, progress: Progress) -> PhaseResult:
    """Training steps of the anchor's workload, as the trainer's loop runs them."""
    from mipnerf_cli import training

    train_settings = workload.train_settings(settings)
    device = runtime.device
    model = workload.build_model(settings, device)
    step_model = _maybe_compile(model, settings)
    optimizer = training.build_optimizer(model, train_settings, runtime)
    rays = workload.anchor_rays(settings.batch, 1, device)
    pixels = torch.rand(settings.batch, 3, generator=torch.Generator().manual_seed(3)).to(device)
    counter = iter(range(1, 1 << 30))

    def step() -> None:
        # As the trainer's loop runs it (step_batch): the sampling noise drawn up front (so a
        # compiled forward sees tensors, not a Generator), the loss read back a step late.
        generator = training.step_generator(0, next(counter), "noise", device)
        noise = model.draw_noise((settings.batch,), generator, device=device)
        training.train_step(
            step_model, optimizer, rays, pixels, train_settings.lr_init, train_settings, None, runtime,
            noise=noise,
        )  # fmt: skip

    flops = model_flops(model.config)
    memory = PeakMemory(device)
    memory.start()
    times = _timed(settings.steps, settings.warmup, step, device, progress)
    return _phase(times, settings.batch, flops.train_per_ray, flops.samples_per_ray, memory.peak_bytes())


def bench_render(settings: BenchSettings, runtime: Runtime, progress: Progress) -> PhaseResult:
    """Deterministic renders of one chunk of the anchor's rays."""
    model = workload.build_model(settings, runtime.device)
    render_model = _maybe_compile(model, settings)
    rays = workload.anchor_rays(settings.chunk, 2, runtime.device)
    options = runtime.render_options(model)

    def step() -> None:
        render_rays(render_model, rays, settings.chunk, white_bkgd=True, **options)

    flops = model_flops(model.config)
    memory = PeakMemory(runtime.device)
    memory.start()
    times = _timed(settings.steps, settings.warmup, step, runtime.device, progress)
    return _phase(times, settings.chunk, flops.render_per_ray, flops.samples_per_ray, memory.peak_bytes())


def bench_memory(settings: BenchSettings, runtime: Runtime, progress: Progress) -> list[dict[str, Any]]:
    """Peak memory while rendering square images of settings.memory_sizes (first chunks only:
    the chunked renderer's working set is reached in its first chunk; the image's own rays
    and output buffers are allocated whole)."""
    if not settings.memory_sizes:
        return []
    model = workload.build_model(settings, runtime.device)
    results = []
    for side in settings.memory_sizes:
        rays = workload.image_rays(side)  # the rays stay on the CPU; render_rays moves one chunk at a time
        rendered = min(len(rays), settings.chunk * settings.memory_chunks)
        progress(f"{side}x{side}")
        memory = PeakMemory(runtime.device)
        memory.start()
        outputs = _render_prefix(model, rays, rendered, settings.chunk, runtime)
        results.append(
            {
                "image": f"{side}x{side}",
                "rays": len(rays),
                "rays_rendered": rendered,
                "peak_memory_bytes": memory.peak_bytes(),
                "rays_and_outputs_bytes": _bundle_bytes(rays) + outputs,
                "memory_kind": memory.kind,
            }
        )
    return results


def fast_path_description(settings: BenchSettings, runtime: Runtime) -> dict[str, Any]:
    """How the phases run: the fast path's blocks and workers (None on the plain path), compile, precision."""
    from mipnerf_cli.core import fast

    cpu_fast = runtime.describe()["fast_path"]
    workers = settings.fast_workers if settings.fast_workers > 0 else fast.default_workers()
    micro_batch = settings.fast_micro_batch or fast.DEFAULT_MICRO_BATCH
    return {
        "enabled": cpu_fast,
        "micro_batch": micro_batch if cpu_fast else None,
        "render_micro_batch": fast.DEFAULT_RENDER_MICRO_BATCH if cpu_fast else None,
        "workers": workers if cpu_fast else None,
        "kernel": _kernels(settings, runtime, micro_batch, workers) if cpu_fast else None,
        "compile": settings.compile,
        "mixed_precision": runtime.autocast_dtype is not None,
        "tf32": runtime.tf32,
    }


def _kernels(settings: BenchSettings, runtime: Runtime, micro_batch: int, workers: int) -> dict[str, Any]:
    """The fast path's matmul kernels for training and rendering: the setting, what it resolves
    to (the same probe, answered once per process, that the phases then use) and the probe's
    GFLOP/s of each kernel."""
    from mipnerf_cli.core import fast, kernels

    model = workload.build_model(settings, torch.device("cpu"))
    out: dict[str, Any] = {"setting": runtime.cpu_kernel}
    for phase, rays in (("train", micro_batch), ("render", fast.DEFAULT_RENDER_MICRO_BATCH)):
        options = fast.FastOptions(micro_batch=rays, workers=workers, kernel=runtime.cpu_kernel)
        chosen = fast.kernel_for(model, options, rays, workers, train=phase == "train").get("kernel")
        out[phase] = chosen.name if chosen is not None else None
        if runtime.cpu_kernel == "auto" and kernels.onednn_available():
            threads = 1 if workers > 1 else torch.get_num_threads()
            out[f"{phase}_probe"] = kernels.fastest(*model.matmul_shape(rays), threads=threads).describe()
    return out


def _maybe_compile(model: torch.nn.Module, settings: BenchSettings) -> torch.nn.Module:
    if settings.compile:
        model.compile(dynamic=False)  # as the trainer does (settings.compile)
    return model


def _timed(
    iterations: int, warmup: int, step: Callable[[], None], device: torch.device, progress: Progress
) -> list[float]:
    """Seconds of each of `iterations` calls of step, after `warmup` unmeasured ones."""
    for i in range(warmup):
        progress(f"warm-up {i + 1}/{warmup}")
        step()
        sync(device)
    times = []
    for i in range(iterations):
        progress(f"{i + 1}/{iterations}")
        tic = time.perf_counter()
        step()
        sync(device)
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


def _bundle_bytes(rays: RayBundle) -> int:
    return sum(t.numel() * t.element_size() for t in rays.tensors().values())


def _render_prefix(model: torch.nn.Module, rays: RayBundle, count: int, chunk: int, runtime: Runtime) -> int:
    """Render the first `count` rays into whole-image output buffers; returns their size."""
    num = len(rays)
    buffers = {"rgb": torch.zeros(num, 3), "distance": torch.zeros(num), "acc": torch.zeros(num)}
    out = render_rays(model, rays[:count], chunk, white_bkgd=True, **runtime.render_options(model))
    for key, value in out.items():
        buffers[key][:count] = value
    return sum(t.numel() * t.element_size() for t in buffers.values())
