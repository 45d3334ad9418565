"""One test image rendered and scored: PSNR and SSIM of the fine level (google/mipnerf eval.py),
LPIPS only when the ``lpips`` package and its network weights are already on disk (nothing is
downloaded); beside them PSNR and SSIM as nerfbaselines' protocol computes them, on both
images truncated to 8 bits (`core.metrics.truncated_to_uint8`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from mipnerf_cli.core.metrics import psnr as psnr_of
from mipnerf_cli.core.metrics import ssim as ssim_of
from mipnerf_cli.core.metrics import truncated_to_uint8
from mipnerf_cli.core.render import RenderStopped, render_image
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.evaluation.results import ImageResult
from mipnerf_cli.io.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png
from mipnerf_cli.runs.trained import TrainedModel
from mipnerf_cli.runtime import Runtime

SSIM_WINDOW = 11

LpipsScorer = Callable[[torch.Tensor, torch.Tensor], float]


def lpips_scorer() -> tuple[Optional[LpipsScorer], Optional[str]]:
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


@dataclasses.dataclass(frozen=True)
class ScoringJob:
    """What rendering and scoring the images of one split needs (the same on every rank)."""

    trained: TrainedModel  # the model, its background and run
    images: ImageSet  # the split's images and their rays
    chunk: int  # rays per forward pass
    runtime: Runtime  # device, precision and fast path: in-training validation's policy too
    lpips: Optional[LpipsScorer]  # None: LPIPS unavailable
    keep_renders: bool  # return each render (for --save-image)


def score_image(job: ScoringJob, level: int, i: int, should_stop: Optional[Callable[[], bool]] = None):
    """(ImageResult, render seconds, the render if the job keeps renders else None) for image i.

    A stop request between two chunks (`should_stop`) raises KeyboardInterrupt."""
    rays, target = job.images.image_rays(i)
    height, width = job.images.heights[i], job.images.widths[i]
    model = job.trained.model
    start = time.perf_counter()
    try:
        out = render_image(
            model, rays, height, width, job.chunk, job.trained.white_bkgd,
            **job.runtime.render_options(model), should_stop=should_stop,
        )  # fmt: skip
    except RenderStopped:
        raise KeyboardInterrupt("stop requested during the render") from None
    seconds = time.perf_counter() - start
    rgb = out["rgb"].clamp(0.0, 1.0)
    rgb8, target8 = truncated_to_uint8(rgb), truncated_to_uint8(target)  # nerfbaselines' protocol
    has_ssim = min(height, width) >= SSIM_WINDOW
    row = ImageResult(
        file=job.images.names[i],
        scale=level,
        psnr=psnr_of(rgb, target),
        ssim=ssim_of(rgb, target) if has_ssim else None,
        lpips=job.lpips(rgb, target) if job.lpips is not None else None,
        psnr_uint8=psnr_of(rgb8, target8),
        ssim_uint8=ssim_of(rgb8, target8) if has_ssim else None,
    )
    return row, seconds, (out if job.keep_renders else None)


def image_stem(name: str, level: int, multiscale: bool) -> str:
    """The file stem of an image's PNGs (multiscale names end in _d<level>)."""
    stem = Path(name).name
    if multiscale and not stem.endswith(f"_d{level}"):
        stem = f"{stem}_d{level}"
    return stem


def save_images(
    image_dir: Path, stem: str, out: dict[str, torch.Tensor], target: torch.Tensor, images: ImageSet
) -> None:
    """The render's RGB, depth and accumulation and the ground truth as <stem>_*.png."""
    lo, hi = depth_range(out["distance"], out["acc"], fallback=(images.near, images.far))
    write_png(image_dir / f"{stem}_gt.png", to_uint8(target))
    write_png(image_dir / f"{stem}_rgb.png", to_uint8(out["rgb"]))
    write_png(image_dir / f"{stem}_depth.png", colorize_depth(out["distance"], out["acc"], lo, hi))
    write_png(image_dir / f"{stem}_acc.png", colorize_acc(out["acc"]))
