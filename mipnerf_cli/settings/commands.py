"""The settings of the commands that read a run: eval, render, view, plot, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ----------------------------------------------------------------------------- eval / render
# (section owned by the eval/render helper: EvalSettings for `mipnerf eval`,
#  RenderSettings for `mipnerf render`; None means "as the checkpoint recorded")

_RESOLUTION_PATTERN = r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$"


class EvalSettings(BaseModel):
    """What `mipnerf eval` needs."""

    model_config = ConfigDict(extra="forbid")

    run: Optional[Path] = Field(None, description="run folder; its newest checkpoint is evaluated")
    ckpt: Optional[Path] = Field(None, description="a checkpoint file (instead of run)")
    data: Optional[Path] = Field(None, description="scene folder (default: the one trained on)")
    scale: Optional[int] = Field(None, ge=1, description="resolution levels to score (default: all present)")
    split: Literal["train", "val", "test"] = "test"
    save_image: bool = Field(False, description="write rendered/ground-truth PNGs under images/")
    limit: Optional[int] = Field(None, ge=1, description="score only the first K images of each level")
    downscale: Optional[int] = Field(
        None, ge=1, description="Blender scenes: score the test images this many times smaller (default: as trained)"
    )
    chunk: int = Field(8192, gt=0, description="rays per forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    mixed_precision: bool = Field(
        True, description="bf16 autocast on CUDA GPUs with native bf16, as training's validation (CPU: float32)"
    )
    tf32: bool = Field(True, description="TF32 matmuls on CUDA")
    out: Optional[Path] = Field(None, description="output folder (default: <run>/eval/<step>)")
    progress: bool = True


class RenderSettings(BaseModel):
    """What `mipnerf render` needs."""

    model_config = ConfigDict(extra="forbid")

    run: Optional[Path] = None
    ckpt: Optional[Path] = None
    data: Optional[Path] = Field(None, description="scene folder whose training cameras set radius and focal")
    path: str = Field(
        "auto",
        description="auto (spiral for forward-facing LLFF scenes, spheric otherwise), a name of "
        "render_paths.PATH_GENERATORS, or a camera_path.json / nerfbaselines trajectory file",
    )
    split: Literal["train", "test"] = Field(
        "train", description="the cameras interpolate goes through (and spheric's radius)"
    )
    frames: int = Field(120, ge=1, le=100_000)
    fps: float = Field(30.0, gt=0, le=1000)
    downscale: float = Field(
        1.0, gt=0, description="render at 1/downscale of the training resolution and focal (older key: scale)"
    )
    radius: Optional[float] = Field(
        None, gt=0, description="camera distance from the origin (default: training cameras' mean)"
    )
    elevation: float = Field(36.0, ge=-89.0, le=89.0, description="degrees above the horizon")
    resolution: Optional[tuple[int, int]] = Field(None, description="WxH; the focal follows the width")
    format: Literal["mp4", "gif", "png"] = "mp4"
    keep_frames: bool = False
    chunk: int = Field(8192, gt=0, description="rays per forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    mixed_precision: bool = Field(
        True, description="bf16 autocast on CUDA GPUs with native bf16, as training's validation (CPU: float32)"
    )
    tf32: bool = Field(True, description="TF32 matmuls on CUDA")
    out: Optional[Path] = Field(None, description="output folder (default: <run>/render/<path>)")
    progress: bool = True

    @field_validator("path")
    @classmethod
    def _known_path(cls, value: str) -> str:
        from mipnerf_cli.rendering.paths import PATH_GENERATORS, is_path_file

        if value not in PATH_GENERATORS and not is_path_file(value):
            raise ValueError(f"unknown camera path; use one of {', '.join(PATH_GENERATORS)} or a FILE.json")
        return value

    @model_validator(mode="before")
    @classmethod
    def _older_scale_key(cls, values: Any) -> Any:
        """`scale`, the older key of `downscale` (`downscale` wins when a flag gives it over a file's `scale`)."""
        if isinstance(values, dict) and "scale" in values:
            values = dict(values)
            older = values.pop("scale")
            values.setdefault("downscale", older)
        return values

    @field_validator("resolution", mode="before")
    @classmethod
    def _parse_resolution(cls, value: Any) -> Any:
        import re

        if isinstance(value, str):
            match = re.match(_RESOLUTION_PATTERN, value)
            if not match:
                raise ValueError(f"'{value}' is not WIDTHxHEIGHT (e.g. 400x400)")
            value = (int(match.group(1)), int(match.group(2)))
        if value is not None and (value[0] < 1 or value[1] < 1 or value[0] * value[1] > 64_000_000):
            raise ValueError("width and height must be at least 1 and at most 64 megapixels in all")
        return value


# ----------------------------------------------------------------------------- view, plot


class ViewSettings(BaseModel):
    """What `mipnerf view` needs."""

    model_config = ConfigDict(extra="forbid")

    run: Optional[Path] = Field(None, description="run folder; its newest checkpoint is shown (and newer ones)")
    ckpt: Optional[Path] = Field(None, description="a checkpoint file (instead of run)")
    data: Optional[Path] = Field(None, description="scene folder whose training cameras start the view")
    host: str = Field("127.0.0.1", description="address to listen on; other than 127.0.0.1 exposes the viewer")
    port: int = Field(8080, description="port to listen on (checked, with the host, when the viewer opens)")
    max_size: int = Field(256, ge=1, description="longer side of the refined image, in pixels")
    watch: bool = Field(True, description="reload newer checkpoints of a run still training")
    keyframes_out: Optional[Path] = Field(None, description="where the camera_path.json export goes (default: ./)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")


class PlotSettings(BaseModel):
    """What `mipnerf plot` needs."""

    model_config = ConfigDict(extra="forbid")

    run: Optional[Path] = Field(None, description="run folder (holds metrics.jsonl)")
    ckpt: Optional[Path] = Field(None, description="a checkpoint file; its run folder is plotted")
    out: Optional[Path] = Field(None, description="PNG to write (default: <run>/quality.png)")
    compare: list[Path] = Field(
        default_factory=list,
        description="further run folders (or checkpoints): their test-view PSNR is drawn beside the run's",
    )


# ----------------------------------------------------------------------------- export


class ExportSettings(BaseModel):
    """What `mipnerf export` needs."""

    model_config = ConfigDict(extra="forbid")

    run: Optional[Path] = None
    ckpt: Optional[Path] = None
    data: Optional[Path] = Field(None, description="scene folder whose training cameras are used")
    what: Literal["mesh", "pointcloud"] = "mesh"
    out: Optional[Path] = Field(None, description="the PLY file (default: <run>/export/<what>.ply)")
    method: Literal["fusion", "density"] = Field(
        "fusion", description="fusion: the training views' surface depths fused (default); density: a density level set"
    )
    grid: int = Field(256, ge=8, description="grid points along the longest side of the scene's box")
    threshold: Optional[float] = Field(None, gt=0, description="density of the surface (default: from the histogram)")
    keep_all: bool = Field(False, description="mesh: keep every piece, not only the largest connected one")
    surface_opacity: float = Field(
        0.2, gt=0, lt=1, description="fusion: accumulated opacity along a ray that marks its surface"
    )
    min_views: int = Field(2, ge=1, description="fusion: views that must agree with a point or piece (else a floater)")
    min_size: float = Field(
        0.02, ge=0, lt=1, description="fusion: smallest mesh piece kept, as a share of the scene box's diagonal"
    )
    min_acc: float = Field(0.95, gt=0, le=1, description="least accumulated opacity of a pixel that gives a point")
    neighbours: int = Field(16, ge=1, description="k of the statistical outlier removal (pointcloud)")
    std_ratio: float = Field(
        2.0, gt=0, description="outlier when the mean k-NN distance exceeds mean + std_ratio * std"
    )
    chunk: int = Field(65536, gt=0, description="points or rays per forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    progress: bool = True
