"""The schema of ``<run>/eval/<step>/results.json``: per-image scores, per-scale means and
population standard deviations, their average; written and read here."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from mipnerf_cli.errors import MipNerfError

RESULTS_FORMAT_VERSION = 1


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
    psnr_uint8: Optional[float] = Field(
        None, description="mean PSNR of nerfbaselines' protocol (8-bit truncated images)"
    )
    ssim_uint8: Optional[float] = Field(
        None, description="mean SSIM of nerfbaselines' protocol (8-bit truncated images)"
    )


class AverageResult(BaseModel):
    """The mean of the per-scale means (null when a scale lacks the value)."""

    model_config = ConfigDict(extra="forbid")

    psnr: Optional[float]
    ssim: Optional[float]
    lpips: Optional[float]
    psnr_uint8: Optional[float] = None
    ssim_uint8: Optional[float] = None


class ImageResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="image name in the split")
    scale: int
    psnr: Optional[float]
    ssim: Optional[float]
    lpips: Optional[float]
    psnr_uint8: Optional[float] = Field(None, description="PSNR of nerfbaselines' protocol (8-bit truncated images)")
    ssim_uint8: Optional[float] = Field(None, description="SSIM of nerfbaselines' protocol (8-bit truncated images)")


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


def mean_or_none(values: list[Optional[float]]) -> Optional[float]:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(statistics.fmean(values))


def std_or_none(values: list[Optional[float]]) -> Optional[float]:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(statistics.pstdev(values))


def scale_result(level: int, height: int, width: int, rows: list[ImageResult]) -> ScaleResult:
    return ScaleResult(
        scale=level,
        factor=2**level,
        height=height,
        width=width,
        num_images=len(rows),
        psnr=mean_or_none([r.psnr for r in rows]),
        psnr_std=std_or_none([r.psnr for r in rows]),
        ssim=mean_or_none([r.ssim for r in rows]),
        ssim_std=std_or_none([r.ssim for r in rows]),
        lpips=mean_or_none([r.lpips for r in rows]),
        psnr_uint8=mean_or_none([r.psnr_uint8 for r in rows]),
        ssim_uint8=mean_or_none([r.ssim_uint8 for r in rows]),
    )


def write_results(path: Path, results: EvalResults) -> None:
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
