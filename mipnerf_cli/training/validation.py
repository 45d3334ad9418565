"""Validation during training: PSNR of a few test views every check_interval.

The views are rendered under the run's `runtime.Runtime`, as `mipnerf eval` renders them,
so validation and eval give the same PSNR for the same checkpoint and view. On a CPU a
validation may render only a small share of the rays trained between two checks
(`val_cpu_share`, default 5%): the cheapest images are kept (a multiscale view's smallest
scales first), so a CPU run spends its time training. GPUs render every chosen image.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.settings import TrainSettings
from mipnerf_cli.training.setup import TrainScene

# The least a CPU validation may always render: two default chunks (val_chunk), about the
# cost of one training step of the paper model, or a few of the CPU configs' model.
MIN_BUDGET_RAYS = 16_384


def pick_val_views(levels: list[int], count: int) -> list[int]:
    """Image indices of `count` evenly spaced views, each with all its scales.

    Multiscale splits list every view's levels together (level 0 first), so a view is a
    level-0 image plus the images that follow it with higher levels.
    """
    starts = [i for i, level in enumerate(levels) if level == 0]
    if count <= 0 or not starts:
        return []
    count = min(count, len(starts))
    chosen = [starts[(k * len(starts)) // count] for k in range(count)]
    picked = []
    for start in chosen:
        picked.append(start)
        i = start + 1
        while i < len(levels) and levels[i] > 0:
            picked.append(i)
            i += 1
    return picked


def load_val_set(settings: TrainSettings, scene: TrainScene, report: Callable[[str], None]):
    """The test split (else val) at val_downscale, or None when validation is off/impossible."""
    from mipnerf_cli.data import load_scene

    if settings.val_views == 0:
        return None
    problems = []
    # Multiscale data brings its own smaller levels, LLFF its factor; downscaling applies to Blender scenes.
    blender = scene.kind == "blender"
    for split in ("test", "val"):
        try:
            downscale = settings.downscale * settings.val_downscale if blender else 1
            return load_scene(
                settings.data,
                split,
                multiscale=settings.multiscale,
                white_bkgd=settings.white_bkgd,
                downscale=downscale,
                **scene.load_options(),
            )
        except MipNerfError as error:
            problems.append(str(error))
    report(f"warning: no validation during training ({problems[0]})")
    return None


def ray_budget(settings: TrainSettings, runtime: Runtime) -> int | None:
    """The most rays one validation renders: on a CPU, `val_cpu_share` of the rays trained
    between two checks (at least MIN_BUDGET_RAYS); None (no limit) on a GPU or when
    `val_cpu_share` is null."""
    if runtime.device.type != "cpu" or settings.val_cpu_share is None:
        return None
    return max(int(settings.val_cpu_share * settings.batch_size * settings.check_interval), MIN_BUDGET_RAYS)


def within_budget(images: list[int], levels: list[int], rays: list[int], budget: int | None) -> list[int]:
    """The images (of `images`, in their order) that one validation renders.

    levels, rays: per image index, its scale and its number of rays. Whole scales are taken
    from the cheapest up while they fit `budget`; when not even the cheapest scale fits, its
    images one by one, and always at least one image. budget None: every image.
    """
    if budget is None or sum(rays[i] for i in images) <= budget:
        return list(images)
    by_level: dict[int, list[int]] = {}
    for i in images:
        by_level.setdefault(levels[i], []).append(i)
    scales = sorted(by_level.values(), key=lambda group: sum(rays[i] for i in group))
    kept, total = [], 0
    for group in scales:
        cost = sum(rays[i] for i in group)
        if total + cost > budget:
            break
        kept += group
        total += cost
    if not kept:
        for i in sorted(scales[0], key=lambda i: rays[i]):
            if kept and total + rays[i] > budget:
                break
            kept.append(i)
            total += rays[i]
    return sorted(kept)


def val_images(val_set, settings: TrainSettings, runtime: Runtime) -> list[int]:
    """The images every validation of this run renders: `val_views` evenly spaced views at
    all their scales (:func:`pick_val_views`), within the CPU's budget (:func:`ray_budget`)."""
    picked = pick_val_views(val_set.levels, settings.val_views)
    rays = [h * w for h, w in zip(val_set.heights, val_set.widths)]
    return within_budget(picked, val_set.levels, rays, ray_budget(settings, runtime))


def describe_budget(val_set, images: list[int], settings: TrainSettings, runtime: Runtime) -> str | None:
    """One line saying what a CPU validation leaves out (None when it renders every chosen image)."""
    picked = pick_val_views(val_set.levels, settings.val_views)
    if images == picked:
        return None
    rays = sum(val_set.heights[i] * val_set.widths[i] for i in images)
    trained = settings.batch_size * settings.check_interval
    scales = sorted({val_set.levels[i] for i in images})
    where = f" at scale(s) {', '.join(map(str, scales))}" if val_set.multiscale else ""
    return (
        f"validation on the CPU renders {len(images)} of {len(picked)} image(s){where}: {rays:,} rays, within "
        f"{ray_budget(settings, runtime):,} ({settings.val_cpu_share:.0%} of the {trained:,} rays trained between "
        f"checks, at least {MIN_BUDGET_RAYS:,}); val_cpu_share: null renders them all"
    )


def validate(
    model: nn.Module, val_set, views: list[int], settings: TrainSettings, runtime: Runtime, should_stop
) -> dict[str, Any] | None:
    """PSNR over the chosen images, overall and per scale ("levels": the scales rendered),
    rendered under `runtime` as `mipnerf eval` renders them; None if `should_stop()`
    answered True (it is asked between chunks)."""
    from mipnerf_cli.core.metrics import psnr
    from mipnerf_cli.core.render import RenderStopped, render_rays

    by_level: dict[int, list[float]] = {}
    for i in views:
        if should_stop():
            return None
        rays, target = val_set.image_rays(i)
        try:
            out = render_rays(
                model,
                rays,
                settings.val_chunk,
                settings.white_bkgd,
                **runtime.render_options(model),
                should_stop=should_stop,
            )
        except RenderStopped:
            return None
        by_level.setdefault(val_set.levels[i], []).append(psnr(out["rgb"].view_as(target), target))
    level_psnrs = [sum(v) / len(v) for _, v in sorted(by_level.items())]
    return {"psnr": sum(level_psnrs) / len(level_psnrs), "psnr_levels": level_psnrs, "levels": sorted(by_level)}


def format_psnrs(result: dict[str, Any]) -> str:
    text = f"{result['psnr']:.2f}"
    if len(result["psnr_levels"]) > 1:
        text += " (per scale " + " / ".join(f"{p:.2f}" for p in result["psnr_levels"]) + ")"
    return text
