"""`mipnerf bench`: training and rendering throughput, FLOP rates, MFU and memory."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mipnerf_cli.errors import MipNerfError


def _format_table(result) -> None:
    from rich.table import Table

    from mipnerf_cli.console import console

    table = Table(title=f"mipnerf bench: {result.config} config on {result.machine} ({result.device})")
    for column in ("", "rays/s", "median", "samples/s", "GFLOP/s", "MFU", "MLP%", "memory"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True, min_width=len(column))
    for name in ("train", "render"):
        phase = getattr(result, name)
        if phase is None:
            continue
        table.add_row(
            name,
            f"{phase.rays_per_s:,.1f}",
            f"{phase.rays_per_s_median:,.1f}",
            f"{phase.samples_per_s / 1e3:,.0f}k",
            f"{phase.gflops:,.1f}",
            "–" if phase.mfu is None else f"{100 * phase.mfu:.0f}%",
            "–" if phase.mlp_shape_utilisation is None else f"{100 * phase.mlp_shape_utilisation:.0f}%",
            f"{phase.peak_memory_bytes / 2**20:,.0f} MiB",
        )
    console.print(table)
    console.print(
        "median: of the per-iteration rates; MFU: of the highest peak below; MLP%: of the rate at the MLP's shape; memory: peak",
        highlight=False,
    )
    flops = result.flops
    console.print(
        f"model: {flops['forward_per_sample'] / 1e6:.3f} MFLOP per sample forward, {flops['samples_per_ray']} samples "
        f"per ray: {flops['train_per_ray'] / 1e9:.3f} GFLOP per trained ray, {flops['render_per_ray'] / 1e9:.3f} per rendered ray",
        highlight=False,
    )
    if result.matmul_peak:
        peak = result.matmul_peak
        shape = "x".join(str(x) for x in peak["mlp_shape"])
        kernels = ", ".join(f"{name} {rate:.1f}" for name, rate in peak["mlp_by_kernel"].items())
        hardware = peak["hardware"]
        console.print(
            f"{peak['dtype']} matmul peak: {kernels} GFLOP/s at the MLP shape {shape}, "
            f"{peak['square_gflops']:.1f} at {peak['square_side']}³"
            + (f", hardware {hardware['gflops']:.1f}" if hardware else "")
            + f"; MFU is relative to the highest, {peak['best_gflops']:.1f} ({peak['best_source']})",
            highlight=False,
        )
    fast = result.fast_path
    path = (
        f"fast path: blocks of {fast['micro_batch']} rays (render {fast['render_micro_batch']}) over {fast['workers']} worker thread(s)"
        if fast["enabled"]
        else "plain path (whole batch per forward)"
    )
    extras = [
        x for x, on in (("torch.compile", fast["compile"]), ("bf16 autocast + tf32", fast["mixed_precision"])) if on
    ]
    kernel = fast.get("kernel")
    if kernel:
        extras.append(f"matmul kernel {kernel['setting']}: train {kernel['train']}, render {kernel['render']}")
    console.print(
        f"{path}{'; ' + ', '.join(extras) if extras else ''}; torch {result.torch_version}, {result.threads} threads",
        highlight=False,
    )
    for row in result.memory:
        console.print(
            f"render {row['image']}: peak {row['peak_memory_bytes'] / 2**20:,.0f} MiB ({row['memory_kind']}; "
            f"{row['rays_rendered']:,} of {row['rays']:,} rays rendered; the image's rays and outputs "
            f"take {row['rays_and_outputs_bytes'] / 2**20:,.1f} MiB of it)",
            highlight=False,
        )
    if result.load_average:
        console.print(f"load average while measuring: {' '.join(str(x) for x in result.load_average)}", highlight=False)


def bench_command(
    what: Annotated[str, typer.Option("--what", help="train, render or all.")] = "all",
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="paper (the reference model), a packaged config (demo, lego, fast: the grid model) or a yaml file; "
            "its `model:` section is used (`model_family: trimip`: its `trimip:` section, with and without the occupancy grid).",
        ),
    ] = "paper",
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch: Annotated[int, typer.Option("--batch", help="Rays per training step (the anchor uses 256).")] = 256,
    chunk: Annotated[int, typer.Option("--chunk", help="Rays per rendered chunk (the anchor uses 2048).")] = 2048,
    steps: Annotated[int, typer.Option("--steps", help="Measured iterations per phase, after the warm-up.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Unmeasured iterations first.")] = 1,
    fast: Annotated[
        bool,
        typer.Option("--fast/--plain", help="The CPU fast path (the default, as training uses it) or the plain one."),
    ] = True,
    micro_batch: Annotated[
        int, typer.Option("--micro-batch", help="Rays per block of the CPU fast path (0: its default).")
    ] = 0,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker threads of the CPU fast path (0: one per torch thread).")
    ] = 0,
    kernel: Annotated[
        str,
        typer.Option(
            "--kernel",
            help="The fast path's matmul kernel: auto (the faster, probed at the MLP's shape), mkl or onednn.",
        ),
    ] = "auto",
    cpu_threads: Annotated[
        Optional[int], typer.Option("--cpu-threads", help="torch CPU threads (default: torch's choice).")
    ] = None,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile", help="Wrap the model in torch.compile (compile time is not measured; warm-up pays it)."
        ),
    ] = False,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            "--mixed-precision/--fp32",
            help="CUDA only: bf16 autocast on GPUs with native bf16 (CPU is always float32).",
        ),
    ] = True,
    tf32: Annotated[
        bool, typer.Option("--tf32/--no-tf32", help="CUDA only: TF32 matmuls for what runs in float32.")
    ] = True,
    peak: Annotated[bool, typer.Option("--peak/--no-peak", help="Measure the fp32 matmul peak (for MFU).")] = True,
    memory_sizes: Annotated[
        str,
        typer.Option(
            "--memory-sizes",
            help="Also render the first chunks of square images of these sides (e.g. 100,800) and report peak memory.",
        ),
    ] = "",
    anchor_train: Annotated[
        Optional[float],
        typer.Option("--anchor-train", help="The anchor's training rays/s, for the ratio in --markdown."),
    ] = None,
    anchor_render: Annotated[
        Optional[float],
        typer.Option("--anchor-render", help="The anchor's rendering rays/s, for the ratio in --markdown."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (progress goes to stderr).")] = False,
    markdown: Annotated[
        Optional[Path],
        typer.Option("--markdown", help="Append a row per phase to this file's results table (e.g. BENCHMARKS.md)."),
    ] = None,
) -> None:
    """Measure rays/s, samples/s, GFLOP/s, MFU and peak memory of training and rendering.

    The workload is the anchor's (hjxwhy/mipnerf_pl, compared by benchmarks/side_by_side.py):
    random rays from a sphere of radius 4, near 2, far 6, Adam 5e-4, randomized sampling,
    white background.
    """
    from mipnerf_cli.bench.report import append_markdown, markdown_rows
    from mipnerf_cli.settings import BenchSettings, bench_grid_model, bench_model

    grid_model = bench_grid_model(config)
    if grid_model is not None:
        settings = BenchSettings(
            what=what, device=device, cpu_threads=cpu_threads, batch=batch, chunk=chunk, steps=steps, warmup=warmup
        )
        _grid_bench(config, grid_model, settings, as_json)
        return
    config_name, model_settings = bench_model(config)
    settings = BenchSettings(
        what=what, model=model_settings, config_name=config_name, device=device, cpu_threads=cpu_threads,
        batch=batch, chunk=chunk, steps=steps, warmup=warmup, fast_path=fast, fast_micro_batch=micro_batch,
        fast_workers=workers, cpu_kernel=kernel, compile=compile, mixed_precision=mixed_precision, tf32=tf32, peak=peak,
        memory_sizes=memory_sizes,
    )  # fmt: skip
    result = _run_with_progress(settings, as_json)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        _format_table(result)
    if markdown is not None:
        command = "mipnerf " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv[1:] else "mipnerf bench"
        rows = markdown_rows(result, {"train": anchor_train, "render": anchor_render}, command)
        try:
            append_markdown(markdown, rows)
        except OSError as error:
            raise MipNerfError(f"cannot write {markdown}: {error}") from None
        if not as_json:
            from mipnerf_cli.console import info

            info(f"appended {len(rows.splitlines())} row(s) to {markdown}")


def _grid_bench(config: str, grid_model, settings, as_json: bool) -> None:
    """The grid model's bench (bench/grid.py): rays/s and samples/s with the occupancy grid and without."""
    from rich.table import Table

    from mipnerf_cli.bench.grid import run_grid_bench
    from mipnerf_cli.bench.peaks import load_average, machine_description
    from mipnerf_cli.bench.run import bench_runtime
    from mipnerf_cli.console import console

    def report(phase: str, message: str) -> None:
        sys.stderr.write(f"bench {phase} {message}\n")
        sys.stderr.flush()

    with bench_runtime(settings) as runtime:
        rows = run_grid_bench(
            grid_model, runtime, settings.batch, settings.chunk, settings.steps, settings.warmup, settings.what, report
        )
        machine = machine_description(runtime.device)
    load = load_average()
    if as_json:
        payload = {"config": config, "machine": machine, "load_average": load, "phases": [r.to_dict() for r in rows]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title=f"mipnerf bench: {config} (grid model) on {machine} ({settings.device})")
    for column in ("", "occupancy grid", "rays/s", "samples/s", "samples/ray"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            row.phase,
            row.grid,
            f"{row.rays_per_s:,.0f}",
            f"{row.samples_per_s / 1e3:,.0f}k",
            f"{row.samples_per_ray:.1f}",
        )
    console.print(table)
    console.print(
        "grid 'ball of radius 1': a stand-in for a trained grid (16% of the cells occupied; lego's holds 15-20%); "
        f"load average {load}",
        highlight=False,
    )


def _run_with_progress(settings, as_json: bool):
    """run_bench with a progress bar (stdout) or status lines on stderr (--json)."""
    from mipnerf_cli.bench.run import run_bench
    from mipnerf_cli.console import ProgressBar

    phases = {
        "train": 1 if settings.what in ("train", "all") else 0,
        "render": 1 if settings.what in ("render", "all") else 0,
    }
    total = (
        (1 if settings.peak else 0)
        + sum(phases.values()) * (settings.warmup + settings.steps)
        + len(settings.memory_sizes)
    )
    if as_json:

        def report(phase: str, message: str) -> None:
            sys.stderr.write(f"bench {phase} {message}\n")
            sys.stderr.flush()

        return run_bench(settings, report)
    started = [False]
    with ProgressBar("bench", total=total, line_interval_s=5.0) as bar:

        def report(phase: str, message: str) -> None:
            bar.update(advance=1 if started[0] else 0, now=f"{phase} {message}")
            started[0] = True

        result = run_bench(settings, report)
        bar.update(advance=1, now="done")
    return result
