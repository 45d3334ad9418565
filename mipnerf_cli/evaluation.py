"""`mipnerf eval` as a library function: render a test split, score it, write results.json.

Single-scale models are scored on the Blender test images at the resolution they were
trained at (``scale`` 1; the run's ``downscale``, as google/mipnerf's ``factor``);
multiscale models on the first ``scale`` resolutions of the converted test split (d0..d3
for ``scale`` 4), each resolution reported on its own and averaged. PSNR and SSIM come from
the fine level (google/mipnerf eval.py). LPIPS is reported only when the ``lpips`` package
and its network weights are already on disk: nothing is downloaded.

Everything lands in a hidden staging folder next to the target and is renamed into place
at the end, so ``<run>/eval/<step>/`` is either complete or absent.

Under torchrun the images are dealt round-robin to the ranks; each renders and scores its
own, and rank 0 gathers the scores (and the renders, with --save-image) in the
single-process order and writes everything: the results are the single-process ones.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import statistics
import time
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field

from mipnerf_cli.core.metrics import psnr as psnr_of
from mipnerf_cli.core.metrics import ssim as ssim_of
from mipnerf_cli.core.render import RenderStopped, render_image
from mipnerf_cli.distributed import SINGLE, Context, round_robin
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png
from mipnerf_cli.output_folder import StagedFolder
from mipnerf_cli.reporting import QuietProgress, ReportArg, as_reporter
from mipnerf_cli.runtime import Runtime, from_settings
from mipnerf_cli.settings import EvalSettings
from mipnerf_cli.stopping import StopSignals
from mipnerf_cli.trained_model import (
    TrainedModel,
    load_trained_model_on_ranks,
    scene_folder,
    training_downscale,
)

RESULTS_FORMAT_VERSION = 1
SSIM_WINDOW = 11


# ----------------------------------------------------------------------------- results.json


class ScaleResult(BaseModel):
    """Scores of the images of one resolution level (mean and population std over images)."""

    model_config = ConfigDict(extra="forbid")

    scale: int = Field(description="resolution level: 0 = full resolution, k = 2^k times smaller")
    factor: int = Field(description="downscale factor 2^scale")
    height: int
    width: int
    num_images: int
    psnr: Optional[float] = Field(description="mean PSNR in dB (null if some image was rendered perfectly)")
    psnr_std: Optional[float]
    ssim: Optional[float] = Field(description="mean SSIM (null when the images are smaller than the 11x11 window)")
    ssim_std: Optional[float]
    lpips: Optional[float] = Field(description="mean LPIPS (null when LPIPS is unavailable)")


class AverageResult(BaseModel):
    """The mean of the per-scale means (null when a scale lacks the value)."""

    model_config = ConfigDict(extra="forbid")

    psnr: Optional[float]
    ssim: Optional[float]
    lpips: Optional[float]


class ImageResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="image name in the split")
    scale: int
    psnr: Optional[float]
    ssim: Optional[float]
    lpips: Optional[float]


class EvalResults(BaseModel):
    """The schema of ``<run>/eval/<step>/results.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = RESULTS_FORMAT_VERSION
    exp_name: str
    checkpoint: str
    step: int
    data: str
    split: str
    kind: Literal["blender", "multiscale", "llff"]
    device: str
    chunk: int
    lpips_available: bool
    lpips_note: Optional[str] = Field(description="why LPIPS is null, when it is")
    scales: list[ScaleResult]
    average: AverageResult
    num_rays: int
    render_seconds: float = Field(description="rendering time (of the slowest process when several rendered)")
    rays_per_second: float = Field(description="rays rendered per second, all processes together")
    processes: int = Field(1, description="processes that shared the images (torchrun ranks)")
    images: list[ImageResult]
    created: str


# ----------------------------------------------------------------------------- LPIPS


def lpips_scorer() -> tuple[Optional[Callable[[torch.Tensor, torch.Tensor], float]], Optional[str]]:
    """(scorer, None) when LPIPS can run offline, else (None, the reason).

    The ``lpips`` package ships its linear layers, but the AlexNet backbone comes from
    torchvision's download cache; both must already be on disk.
    """
    if importlib.util.find_spec("lpips") is None:
        return None, "the lpips package is not installed"
    hub_checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(hub_checkpoints.glob("alexnet-*.pth")):
        return None, f"the AlexNet weights LPIPS needs are not in {hub_checkpoints} (never downloaded)"
    try:
        import lpips  # type: ignore[import-not-found]

        network = lpips.LPIPS(net="alex", verbose=False).eval()
    except Exception as error:  # any import or loading failure just disables the metric
        return None, f"lpips could not be loaded offline ({type(error).__name__})"

    @torch.no_grad()
    def score(rendered: torch.Tensor, target: torch.Tensor) -> float:
        # (H, W, 3) in [0, 1] -> (1, 3, H, W) in [-1, 1], as LPIPS expects.
        to_input = lambda image: image.permute(2, 0, 1)[None].float() * 2 - 1  # noqa: E731
        return float(network(to_input(rendered), to_input(target)))

    return score, None


# ----------------------------------------------------------------------------- evaluation


def _mean(values: list[Optional[float]]) -> Optional[float]:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(statistics.fmean(values))


def _std(values: list[Optional[float]]) -> Optional[float]:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(statistics.pstdev(values))


def _image_stem(name: str, level: int, multiscale: bool) -> str:
    stem = Path(name).name
    if multiscale and not stem.endswith(f"_d{level}"):
        stem = f"{stem}_d{level}"
    return stem


def select_images(levels: list[int], scale: int, limit: Optional[int]) -> list[list[int]]:
    """Indices of the images to score, grouped by level 0..scale-1 (first `limit` of each)."""
    groups = []
    for level in range(scale):
        indices = [i for i, image_level in enumerate(levels) if image_level == level]
        groups.append(indices[:limit] if limit is not None else indices)
    return groups


def check_scale(requested: Optional[int], levels: list[int], kind: str, data: Path) -> int:
    """The number of levels to score: `requested`, or all levels present."""
    present = len(set(levels))
    if requested is None:
        return present
    if requested > present:
        what = "single-scale Blender scene" if kind == "blender" else "scene"
        raise MipNerfError(
            f"--scale {requested}: {data} is a {what} with {present} resolution level"
            f"{'s' if present != 1 else ''}; use --scale {present} or less"
        )
    return requested


def load_eval_scene(trained: TrainedModel, data: Optional[Path], split: str, downscale: Optional[int] = None):
    """The split to score, after checking that its kind matches the checkpoint's.

    downscale: Blender scenes are scored this many times smaller (default: as trained).
    """
    from mipnerf_cli.data import llff_options, load_scene, scene_kind

    folder = scene_folder(trained, data)
    kind = scene_kind(folder)
    if trained.kind is not None and kind != trained.kind:
        names = {"multiscale": "a multiscale", "llff": "an LLFF"}
        trained_as = names.get(trained.kind, "a single-scale (Blender)")
        found = names.get(kind, "a single-scale (Blender)")
        raise MipNerfError(
            f"{folder} is {found} scene but checkpoint {trained.checkpoint_path} was trained on {trained_as} "
            "scene; pass --data with a scene of the same kind"
        )
    shrink = training_downscale(trained, kind, downscale)
    images = load_scene(
        folder,
        split,
        multiscale=(kind == "multiscale"),
        white_bkgd=trained.white_bkgd,
        downscale=shrink,
        **llff_options(trained.settings),
    )
    return folder, kind, images


def _is_eval_folder(folder: Path) -> bool:
    return (folder / "results.json").is_file()


def evaluate(
    settings: EvalSettings, context: Context | None = None, report: ReportArg = None
) -> tuple[Optional[EvalResults], Path]:
    """Render and score the test split; returns the results and the folder they were written to.

    context: this process's place among the torchrun processes (default: alone); ranks other
    than 0 return None for the results.
    report: the `reporting.Reporter` that shows the progress (default: silent).
    Ctrl+C or SIGTERM stops the render at the next chunk and raises KeyboardInterrupt,
    leaving nothing behind (`stopping.StopSignals`).
    """
    context = context or SINGLE
    runtime = from_settings(settings, context.device)  # the policy of in-training validation too
    device = runtime.device
    trained = load_trained_model_on_ranks(settings.run, settings.ckpt, device, context)

    def load():
        folder, kind, images = load_eval_scene(trained, settings.data, settings.split, settings.downscale)
        scale = check_scale(settings.scale, images.levels, kind, folder)
        groups = select_images(images.levels, scale, settings.limit)
        if not any(groups):
            raise MipNerfError(f"{folder}: the {settings.split} split has no images")
        return folder, kind, images, groups

    folder, kind, images, groups = context.main_first(load)
    lpips, lpips_note = lpips_scorer()

    target = settings.out if settings.out is not None else trained.run_dir / "eval" / str(trained.step)
    staging = context.on_main(
        lambda: StagedFolder.open(target, _is_eval_folder, "an eval result folder (results.json)")
    )
    try:
        with StopSignals() as stop:
            results = _score(
                settings,
                trained,
                images,
                groups,
                kind,
                folder,
                lpips,
                lpips_note,
                staging.path if staging else None,
                runtime,
                context,
                as_reporter(report),
                stop,
            )
        if staging is not None:
            _write_results(staging.path / "results.json", results)
    except BaseException:
        if staging is not None:
            staging.discard()
        raise
    if staging is None:
        return None, target
    staging.commit()
    return results, staging.target


def _score(
    settings,
    trained,
    images,
    groups,
    kind,
    folder,
    lpips,
    lpips_note,
    out_dir: Optional[Path],
    runtime: Runtime,
    context: Context,
    reporter,
    stop: StopSignals,
) -> Optional[EvalResults]:
    """Render and score the images of `groups`; the results on rank 0, None on the other ranks."""
    if settings.save_image and out_dir is not None:
        (out_dir / "images").mkdir()
    # (level, image index) in the single-process order; item k goes to rank k % W.
    order = [(level, i) for level, indices in enumerate(groups) for i in indices]
    level_rows: dict[int, list[ImageResult]] = {level: [] for level in range(len(groups))}
    rank_seconds = [0.0] * context.world_size
    num_rays = 0
    show = settings.progress and context.is_main
    bar = reporter.progress("eval", total=len(order), line_interval_s=5.0) if show else QuietProgress()

    def work(k: int):
        stop.check()
        return _score_image(settings, trained, images, lpips, runtime, *order[k], should_stop=stop.requested)

    def take(k: int, rank: int, item) -> None:
        nonlocal num_rays
        row, seconds, out = item
        level, i = order[k]
        rank_seconds[rank] += seconds
        num_rays += images.heights[i] * images.widths[i]
        level_rows[level].append(row)
        if out is not None:
            stem = _image_stem(images.names[i], level, images.multiscale)
            _save_images(out_dir / "images", stem, out, images.image_rays(i)[1], images)
        bar.update(1, scale=level, psnr=row.psnr if row.psnr is not None else float("inf"))

    with bar:
        round_robin(context, len(order), work, take)
    stop.check()
    if not context.is_main:
        return None
    scales: list[ScaleResult] = []
    rows: list[ImageResult] = []
    for level, indices in enumerate(groups):
        if not level_rows[level]:
            continue
        first_image = indices[0]
        scales.append(_scale_result(level, images.heights[first_image], images.widths[first_image], level_rows[level]))
        rows.extend(level_rows[level])
    render_seconds = max(rank_seconds)
    return EvalResults(
        exp_name=trained.exp_name,
        checkpoint=str(trained.checkpoint_path),
        step=trained.step,
        data=str(folder),
        split=settings.split,
        kind=kind,
        device=str(runtime.device),
        chunk=settings.chunk,
        lpips_available=lpips is not None,
        lpips_note=lpips_note,
        scales=scales,
        average=AverageResult(
            psnr=_mean([s.psnr for s in scales]),
            ssim=_mean([s.ssim for s in scales]),
            lpips=_mean([s.lpips for s in scales]),
        ),
        num_rays=num_rays,
        render_seconds=render_seconds,
        rays_per_second=num_rays / render_seconds if render_seconds > 0 else 0.0,
        processes=context.world_size,
        images=rows,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _score_image(settings, trained, images, lpips, runtime: Runtime, level: int, i: int, should_stop=None):
    """(ImageResult, render seconds, the render if it is to be saved else None) for image i.

    A stop request between two chunks (`should_stop`) raises KeyboardInterrupt."""
    rays, target = images.image_rays(i)
    height, width = images.heights[i], images.widths[i]
    start = time.perf_counter()
    try:
        out = render_image(
            trained.model,
            rays,
            height,
            width,
            settings.chunk,
            trained.white_bkgd,
            **runtime.render_options(trained.model),
            should_stop=should_stop,
        )
    except RenderStopped:
        raise KeyboardInterrupt("stop requested during the render") from None
    seconds = time.perf_counter() - start
    rgb = out["rgb"].clamp(0.0, 1.0)
    row = ImageResult(
        file=images.names[i],
        scale=level,
        psnr=psnr_of(rgb, target),
        ssim=ssim_of(rgb, target) if min(height, width) >= SSIM_WINDOW else None,
        lpips=lpips(rgb, target) if lpips is not None else None,
    )
    return row, seconds, (out if settings.save_image else None)


def _scale_result(level: int, height: int, width: int, rows: list[ImageResult]) -> ScaleResult:
    return ScaleResult(
        scale=level,
        factor=2**level,
        height=height,
        width=width,
        num_images=len(rows),
        psnr=_mean([r.psnr for r in rows]),
        psnr_std=_std([r.psnr for r in rows]),
        ssim=_mean([r.ssim for r in rows]),
        ssim_std=_std([r.ssim for r in rows]),
        lpips=_mean([r.lpips for r in rows]),
    )


def _save_images(image_dir: Path, stem: str, out: dict[str, torch.Tensor], target: torch.Tensor, images) -> None:
    lo, hi = depth_range(out["distance"], out["acc"], fallback=(images.near, images.far))
    write_png(image_dir / f"{stem}_gt.png", to_uint8(target))
    write_png(image_dir / f"{stem}_rgb.png", to_uint8(out["rgb"]))
    write_png(image_dir / f"{stem}_depth.png", colorize_depth(out["distance"], out["acc"], lo, hi))
    write_png(image_dir / f"{stem}_acc.png", colorize_acc(out["acc"]))


def _write_results(path: Path, results: EvalResults) -> None:
    # Non-finite floats (a perfect image's PSNR) are written as null: JSON has no inf.
    try:
        path.write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        # `path` is inside the hidden staging folder, a sibling of the output folder.
        where = path.parent.parent
        raise MipNerfError(
            f"could not write results.json in {where}: {error.strerror or error}; nothing was kept"
        ) from None


def read_results(path: Path) -> EvalResults:
    """Parse and validate a results.json."""
    return EvalResults.model_validate_json(Path(path).read_text(encoding="utf-8"))
