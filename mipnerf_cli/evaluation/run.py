"""`mipnerf eval` as a library function: render a test split, score it, write results.json.

Single-scale models are scored on the Blender test images at the resolution they were
trained at (``scale`` 1; the run's ``downscale``, as google/mipnerf's ``factor``);
multiscale models on the first ``scale`` resolutions of the converted test split (d0..d3
for ``scale`` 4), each resolution reported on its own and averaged.

Everything lands in a hidden staging folder next to the target and is renamed into place
at the end, so ``<run>/eval/<step>/`` is either complete or absent.

Under torchrun the images are dealt round-robin to the ranks; each renders and scores its
own, and rank 0 gathers the scores (and the renders, with --save-image) in the
single-process order and writes everything: the results are the single-process ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Optional

from mipnerf_cli.distributed import SINGLE, Context, round_robin
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.evaluation.results import (
    AverageResult,
    EvalResults,
    ImageResult,
    mean_or_none,
    scale_result,
    write_results,
)
from mipnerf_cli.evaluation.scoring import ScoringJob, image_stem, lpips_scorer, save_images, score_image
from mipnerf_cli.io.staging import StagedFolder
from mipnerf_cli.reporting import QuietProgress, ReportArg, Reporter, as_reporter
from mipnerf_cli.runs.trained import load_trained_model_on_ranks
from mipnerf_cli.runtime import Runtime, from_settings
from mipnerf_cli.settings import EvalSettings
from mipnerf_cli.stopping import StopSignals


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
    with runtime:  # the fast path's worker threads are joined when the evaluation ends
        return _evaluate(settings, context, runtime, report)


def _evaluate(
    settings: EvalSettings, context: Context, runtime: Runtime, report: ReportArg
) -> tuple[Optional[EvalResults], Path]:
    trained = load_trained_model_on_ranks(settings.run, settings.ckpt, runtime.device, context)

    def load():
        scene = trained.scene(settings.data)  # refused unless of the kind the checkpoint was trained on
        folder, kind, images = scene.folder, scene.kind, scene.load(settings.split, settings.downscale)
        scale = check_scale(settings.scale, images.levels, kind, folder)
        groups = select_images(images.levels, scale, settings.limit)
        if not any(groups):
            raise MipNerfError(f"{folder}: the {settings.split} split has no images")
        return folder, kind, images, groups

    folder, kind, images, groups = context.main_first(load)
    lpips, lpips_note = lpips_scorer()
    job = ScoringJob(trained, images, settings.chunk, runtime, lpips, keep_renders=settings.save_image)

    target = settings.out if settings.out is not None else trained.run_dir / "eval" / str(trained.step)
    staging = context.on_main(
        lambda: StagedFolder.open(target, _is_eval_folder, "an eval result folder (results.json)")
    )
    try:
        with StopSignals() as stop:
            image_dir = None
            if settings.save_image and staging is not None:
                image_dir = staging.path / "images"
                image_dir.mkdir()
            bar = as_reporter(report) if settings.progress and context.is_main else None
            scored = _score_split(job, groups, image_dir, context, bar, stop)
        if staging is not None:
            results = EvalResults(
                exp_name=trained.exp_name, checkpoint=str(trained.checkpoint_path), step=trained.step,
                data=str(folder), split=settings.split, kind=kind, device=str(runtime.device), chunk=settings.chunk,
                lpips_available=lpips is not None, lpips_note=lpips_note, **scored.summary(groups, images),
                processes=context.world_size, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            )  # fmt: skip
            write_results(staging.path / "results.json", results)
    except BaseException:
        if staging is not None:
            staging.discard()
        raise
    if staging is None:
        return None, target
    staging.commit()
    return results, staging.target


@dataclasses.dataclass
class _Scored:
    """The scores gathered on rank 0, by level, with the rays and render seconds of each rank."""

    level_rows: dict[int, list[ImageResult]]
    rank_seconds: list[float]
    num_rays: int = 0

    def summary(self, groups: list[list[int]], images) -> dict:
        """The per-scale, average, timing and per-image fields of EvalResults."""
        scales, rows = [], []
        for level, indices in enumerate(groups):
            if self.level_rows[level]:
                first = indices[0]
                scales.append(scale_result(level, images.heights[first], images.widths[first], self.level_rows[level]))
                rows.extend(self.level_rows[level])
        seconds = max(self.rank_seconds)
        average = AverageResult(
            **{key: mean_or_none([getattr(s, key) for s in scales]) for key in AverageResult.model_fields}
        )
        return {
            "scales": scales, "average": average, "num_rays": self.num_rays, "render_seconds": seconds,
            "rays_per_second": self.num_rays / seconds if seconds > 0 else 0.0, "images": rows,
        }  # fmt: skip


def _score_split(
    job: ScoringJob,
    groups: list[list[int]],
    image_dir: Optional[Path],
    context: Context,
    reporter: Optional[Reporter],
    stop: StopSignals,
) -> _Scored:
    """Render and score the images of `groups`, dealt round-robin to the ranks; rank 0 gathers
    the scores (and writes the renders into `image_dir` when given) in the single-process order."""
    # (level, image index) in the single-process order; item k goes to rank k % W.
    order = [(level, i) for level, indices in enumerate(groups) for i in indices]
    scored = _Scored({level: [] for level in range(len(groups))}, [0.0] * context.world_size)
    images = job.images
    bar = reporter.progress("eval", total=len(order), line_interval_s=5.0) if reporter else QuietProgress()

    def work(k: int):
        stop.check()
        return score_image(job, *order[k], should_stop=stop.requested)

    def take(k: int, rank: int, item) -> None:
        row, seconds, out = item
        level, i = order[k]
        scored.rank_seconds[rank] += seconds
        scored.num_rays += images.heights[i] * images.widths[i]
        scored.level_rows[level].append(row)
        if out is not None and image_dir is not None:
            stem = image_stem(images.names[i], level, images.multiscale)
            save_images(image_dir, stem, out, images.image_rays(i)[1], images)
        bar.update(1, scale=level, psnr=row.psnr if row.psnr is not None else float("inf"))

    with bar:
        round_robin(context, len(order), work, take)
    stop.check()
    return scored


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


def _is_eval_folder(folder: Path) -> bool:
    return (folder / "results.json").is_file()
