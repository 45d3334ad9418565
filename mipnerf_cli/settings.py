"""All settings of the commands: pydantic models, resolved in one place (`resolve_settings`;
reading and writing the yaml files: `mipnerf_cli.config_files`). Nothing here reads a scene.

Precedence, lowest first: the defaults written here, a ``--config`` yaml file (a path or
the name of a config shipped in ``mipnerf_cli/configs``), then the command-line flags.
Unknown keys and bad values are pydantic validation errors, which the CLI prints as
``• field: message`` lines. Relative paths inside a yaml file are relative to that file's
folder (so a run folder's ``config.yaml`` still works after the folder moves); relative
paths given on the command line are relative to the current directory. Paths are never
shell-expanded.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mipnerf_cli.config_files import deep_merge, find_config, load_yaml_settings, path_fields
from mipnerf_cli.core.models.mipnerf_config import ModelConfig
from mipnerf_cli.errors import MipNerfError

DATA_ROOT_ENV = "MIPNERF_DATA"
SettingsT = TypeVar("SettingsT", bound=BaseModel)
SIMPLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _config_fields(config_type: type) -> dict[str, Any]:
    """pydantic fields (type, Field) of a core model config dataclass: its defaults, bounds and
    descriptions (``core.models.mipnerf_config.hyper``), in its order."""
    types = typing.get_type_hints(config_type)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        extra = dict(field.metadata)
        description = extra.pop("help", None)
        fields[field.name] = (types[field.name], Field(field.default, description=description, **extra))
    return fields


class ModelSettings(create_model("ModelFields", __module__=__name__, **_config_fields(ModelConfig))):
    """The `model:` section: the fields of `core.models.mipnerf_config.ModelConfig` (declared there
    once, with the reference defaults), and the rules that span fields."""

    model_config = ConfigDict(extra="forbid")
    config_type: ClassVar[type] = ModelConfig

    @model_validator(mode="after")
    def _degrees_ordered(self) -> "ModelSettings":
        if self.max_deg_point <= self.min_deg_point:
            raise ValueError(
                f"max_deg_point ({self.max_deg_point}) must be larger than min_deg_point ({self.min_deg_point})"
            )
        return self

    def to_model_config(self) -> ModelConfig:
        """The engine's frozen `ModelConfig` with these values."""
        return self.config_type(**self.model_dump())


class TriMipSettings(BaseModel):
    """The `trimip:` section: the fields of `core.models.trimip.TriMipConfig` (the grid model,
    `model_family: trimip`, `--config fast`); a test keeps the two alike."""

    model_config = ConfigDict(extra="forbid")

    bound: float = Field(1.5, gt=0, description="the scene lies in [-bound, bound]^3 (Blender scenes: 1.5)")
    plane_resolution: int = Field(128, ge=1, description="texels per side of each tri-plane (a power of two)")
    plane_features: int = Field(16, ge=1, description="channels per plane")
    hidden: int = Field(64, ge=1, description="width of the density and colour MLPs")
    geo_features: int = Field(15, ge=1, description="features the density MLP hands to the colour MLP")
    deg_view: int = Field(4, ge=0, description="frequencies of the view-direction encoding")
    march_steps: int = Field(192, ge=1, description="marching steps across the scene cube's diagonal")
    prefilter: bool = Field(
        True, description="mip level from the cone's footprint (false: point samples, the ablation)"
    )
    density_bias: float = Field(-1.0, description="added to the raw density before exp")
    rgb_padding: float = Field(0.001, ge=0, description="colour range widened to [-p, 1+p]")
    occupancy_resolution: int = Field(
        64, ge=0, description="occupancy grid cells per side (0: no empty-space skipping)"
    )
    occupancy_interval: int = Field(16, ge=1, description="training steps between occupancy grid updates")
    occupancy_warmup: int = Field(256, ge=0, description="until this step every cell is evaluated at each update")
    occupancy_threshold: float = Field(0.01, gt=0, description="a cell is occupied above this opacity per step")
    occupancy_decay: float = Field(0.95, gt=0, le=1, description="decay of a cell's running opacity per update")
    init_scale: float = Field(0.1, ge=0, description="plane features start uniform in [-s, s]")
    early_stop: float = Field(
        1e-3,
        ge=0,
        lt=1,
        description="skip steps behind a transmittance below this (a gradient-free pass finds them; 0: off)",
    )

    @field_validator("plane_resolution")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"must be a power of two (64, 128, 256, ...), not {value}")
        return value

    def to_model_config(self):
        """The engine's frozen `TriMipConfig` with these values."""
        from mipnerf_cli.core.models.trimip import TriMipConfig

        return TriMipConfig(**self.model_dump())


def _default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


class TrainSettings(BaseModel):
    """Everything `mipnerf train` needs. Defaults are google/mipnerf's (train.py, utils.Config)."""

    model_config = ConfigDict(extra="forbid")

    # -- where: scene and run folder
    exp_name: Optional[str] = Field(None, pattern=SIMPLE_NAME, description="run folder name (default: scene name)")
    out_dir: Path = Field(Path("out"), description="runs are written to <out_dir>/<exp_name>/")
    scene: Optional[str] = Field(None, pattern=SIMPLE_NAME, description="scene name under data_root")
    data: Optional[Path] = Field(None, description="scene folder; overrides scene/data_root")
    data_root: Path = Field(
        default_factory=_default_data_root, description=f"holds nerf_synthetic/ and multiscale/ (env {DATA_ROOT_ENV})"
    )
    multiscale: bool = Field(False, description="train on a converted multiscale scene")
    white_bkgd: bool = Field(True, description="composite on white (Blender scenes)")
    downscale: int = Field(
        1, ge=1, description="train on images this many times smaller (Blender scenes; the reference's `factor`)"
    )
    factor: int = Field(
        0, ge=0, description="LLFF scenes: read images_<factor>/ (0: images/), the reference's `factor`"
    )
    spherify: Optional[bool] = Field(
        None,
        description="LLFF scenes: a 360° capture (spherified poses, no NDC); None: the scene's kind "
        "(recorded by `mipnerf convert`, else detected from the camera layout; plain poses_bounds.npy: False)",
    )
    llffhold: int = Field(8, ge=1, description="LLFF scenes: every llffhold-th image is a test image")

    # -- optimisation
    seed: int = Field(0, ge=0)
    batch_size: int = Field(4096, gt=0, description="rays per step (global, over all ranks)")
    lr_init: float = Field(5e-4, gt=0)
    lr_final: float = Field(5e-6, gt=0)
    lr_delay_steps: int = Field(2500, ge=0, description="warm-up steps")
    lr_delay_mult: float = Field(0.01, ge=0, le=1, description="lr multiplier at step 0 of the warm-up")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0)
    grad_max_norm: float = Field(0.0, ge=0, description="clip the gradient norm (0: off, as the reference)")
    grad_max_val: float = Field(0.0, ge=0, description="clip gradient values (0: off, as the reference)")
    coarse_loss_mult: float = Field(0.1, ge=0)
    disable_multiscale_loss: bool = Field(False, description="ignore the 4^level loss weights of multiscale data")
    randomized: bool = Field(True, description="stratified sampling noise while training")
    max_steps: int = Field(1_000_000, gt=0)
    max_minutes: Optional[float] = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="stop (and save) after this many minutes of training over all sessions of the run, "
        "start-up and validation not counted; a larger value or --max-steps continues (null: no limit)",
    )

    # -- bookkeeping
    check_interval: int = Field(10_000, gt=0, description="steps between checkpoints and validation")
    log_interval: int = Field(100, gt=0, description="steps between metrics.jsonl lines")
    keep_checkpoints: int = Field(3, ge=0, description="step-*.pt files kept besides last.pt")
    resume_path: Optional[str] = Field(
        "auto", description="'auto' (last.pt of this run, if any), a checkpoint file, or null"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: Optional[int] = Field(
        None, ge=1, description="torch CPU threads (default: torch's choice); fewer can be faster on a busy machine"
    )
    mixed_precision: bool = Field(
        True, description="bf16 autocast on CUDA GPUs with native bf16 (compute capability 8+); CPU is always float32"
    )
    tf32: bool = Field(True, description="TF32 matmuls on CUDA (a switch of its own; CPU ignores it)")
    fast_path: bool = Field(
        True,
        description="CPU: each batch in cache-sized blocks of rays over worker threads (same results within float rounding)",
    )
    fast_micro_batch: int = Field(16, gt=0, description="rays per block of the CPU fast path")
    cpu_kernel: Literal["auto", "mkl", "onednn"] = Field(
        "auto", description="CPU fast path's matmul kernel: auto (the faster, probed at the MLP's shape), mkl or onednn"
    )
    fast_workers: int = Field(0, ge=0, description="threads of the CPU fast path (0: one per torch CPU thread)")
    compile: bool = Field(
        False, description="torch.compile the model (for CUDA; on a CPU it gains ~1% for minutes of compiling)"
    )
    tensorboard: bool = Field(True, description="write TensorBoard events when tensorboard is installed")

    # -- validation (PSNR curve in metrics.jsonl)
    val_views: int = Field(1, ge=0, description="test views rendered every check_interval (0: none)")
    val_downscale: int = Field(
        4,
        ge=1,
        description="validation images are this many times smaller than the training ones (Blender scenes; multiscale data has its own levels)",
    )
    val_chunk: int = Field(8192, gt=0, description="rays per forward pass when rendering")
    val_cpu_share: Optional[float] = Field(
        0.05,
        gt=0,
        description="on a CPU a validation renders at most this share of the rays trained between checks, the smallest scales first (null: every view at every scale)",
    )

    model_family: Literal["mipnerf", "trimip"] = Field(
        "mipnerf",
        description="mipnerf: the paper's model (`model:`); trimip: the grid model (`trimip:`, `--config fast`)",
    )
    model: ModelSettings = Field(default_factory=ModelSettings)
    trimip: TriMipSettings = Field(default_factory=TriMipSettings)

    @field_validator("resume_path", mode="before")
    @classmethod
    def _none_spelled_out(cls, value: Any) -> Any:
        # mipnerf_pl configs write `resume_path: None`, which yaml reads as the string "None".
        if isinstance(value, str) and value.strip() in ("", "None", "none", "null"):
            return None
        return value

    def model_family_config(self):
        """(the model family, its engine config) these settings train."""
        section = self.trimip if self.model_family == "trimip" else self.model
        return self.model_family, section.to_model_config()

    @property
    def run_dir(self) -> Path:
        if self.exp_name is None:
            raise MipNerfError("exp_name is not set (resolve the settings first)")
        return self.out_dir / self.exp_name


# ----------------------------------------------------------------------------- loading


def resolve_train_settings(
    config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainSettings:
    """Defaults < `config` yaml < `overrides` (CLI flags; a nested dict for `model`).

    The result has a concrete `data` folder, `exp_name` and absolute paths.
    Raises pydantic.ValidationError for bad values, MipNerfError for a bad file.
    """
    return finish_train_settings(resolve_settings(TrainSettings, config, overrides))


def resolve_settings(
    settings_type: type[SettingsT],
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    choices: tuple[tuple[str, ...], ...] = (),
) -> SettingsT:
    """Any command's settings: defaults < `config` yaml < `overrides` (None: not given).

    choices: groups of keys that are one choice (``("run", "ckpt")``): an override of one of
    them replaces the file's values of the whole group.
    Raises pydantic.ValidationError for bad values, MipNerfError for a bad file.
    """
    values: dict[str, Any] = {}
    if config is not None:
        values = load_yaml_settings(find_config(config), path_fields(settings_type))
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for group in choices:
        if any(key in given for key in group):
            values = {key: value for key, value in values.items() if key not in group}
    return settings_type.model_validate(deep_merge(values, given))


def finish_train_settings(settings: TrainSettings) -> TrainSettings:
    """Fill in the derived fields: the scene folder, the run name, absolute paths. Nothing is
    read from the scene here: ``training.resolve_scene`` decides its kind and spherify once."""
    if settings.data is None:
        if settings.scene is None:
            raise MipNerfError("no scene given: pass --scene NAME (looked up under --data-root) or --data SCENE_DIR")
        family = "multiscale" if settings.multiscale else "nerf_synthetic"
        data = settings.data_root / family / settings.scene
    else:
        data = settings.data
    exp_name = settings.exp_name
    if exp_name is None:
        exp_name = settings.scene or data.absolute().name
        if settings.multiscale and not exp_name.endswith("multiscale"):
            exp_name += "-multiscale"
    resume = settings.resume_path
    if resume not in (None, "auto"):
        resume = str(Path(resume).absolute())
    return settings.model_copy(
        update={
            "data": data.absolute(),
            "data_root": settings.data_root.absolute(),
            "out_dir": settings.out_dir.absolute(),
            "exp_name": exp_name,
            "resume_path": resume,
        }
    )


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


# ----------------------------------------------------------------------------- convert (photos, video)

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")
DEFAULT_CAMERA_MODEL = "SIMPLE_RADIAL"


@pydantic_dataclass(frozen=True)
class SfmOptions:
    """How to run SfM: camera model, one camera per image, threads, matching (None: by source).
    Checked by ``convert.capture.sfm.check_options`` (messages naming the flags)."""

    camera_model: str = DEFAULT_CAMERA_MODEL
    per_image_cameras: bool = False
    threads: Optional[int] = None
    sequential: Optional[bool] = None  # None: sequential for a video, exhaustive for photos


@pydantic_dataclass(frozen=True)
class CaptureOptions:
    """What `mipnerf convert` was asked for a photo or video source (checked, with messages
    naming the flags, by ``convert.capture.pipeline.check_request``)."""

    fps: Optional[float] = None
    frames: Optional[int] = None
    sfm: SfmOptions = SfmOptions()
    scene_kind: Optional[str] = None  # None: detected from the camera layout
    multiscale: bool = False
    llffhold: int = 8
    overwrite: bool = False
    workers: Optional[int] = None


# ----------------------------------------------------------------------------- bench


class BenchSettings(BaseModel):
    """What `mipnerf bench` needs (the workload itself is fixed: bench/workload.py)."""

    model_config = ConfigDict(extra="forbid")

    what: Literal["train", "render", "all"] = "all"
    model: ModelSettings = Field(default_factory=ModelSettings)
    config_name: str = Field("paper", description="the name the results table shows for the model")
    device: Literal["cpu", "cuda"] = "cpu"
    cpu_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    batch: int = Field(256, ge=1, description="rays per training step")
    chunk: int = Field(2048, ge=1, description="rays per rendered chunk")
    steps: int = Field(5, ge=1, description="measured iterations per phase")
    warmup: int = Field(1, ge=0, description="unmeasured iterations first")
    fast_path: bool = Field(True, description="the CPU fast path (blocks of rays over worker threads)")
    fast_micro_batch: int = Field(0, ge=0, description="rays per block of the fast path (0: its default)")
    cpu_kernel: Literal["auto", "mkl", "onednn"] = Field(
        "auto", description="the fast path's matmul kernel: auto (the faster, probed), mkl or onednn"
    )
    fast_workers: int = Field(0, ge=0, description="threads of the fast path (0: one per torch CPU thread)")
    compile: bool = Field(False, description="torch.compile the model (the warm-up pays the compile time)")
    mixed_precision: bool = Field(True, description="CUDA only: bf16 autocast on GPUs with native bf16")
    tf32: bool = Field(True, description="CUDA only: TF32 matmuls")
    peak: bool = Field(True, description="measure the matmul peaks (for MFU)")
    memory_sizes: tuple[int, ...] = Field((), description="square image sides rendered for the memory check")
    memory_chunks: int = Field(2, ge=1, description="chunks rendered of each image (the peak is reached in the first)")

    @field_validator("memory_sizes", mode="before")
    @classmethod
    def _parse_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = tuple(int(part) for part in value.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError("give image sides separated by commas, e.g. 100,800") from None
        if any(isinstance(size, int) and not 1 <= size <= 8000 for size in value or ()):
            raise ValueError("every side must be between 1 and 8000")
        return value


def bench_grid_model(config: str) -> Optional[TriMipSettings]:
    """The `trimip:` settings when bench's --config trains the grid model (`model_family: trimip`), else None."""
    if config == "paper":
        return None
    path = find_config(config)
    values = load_yaml_settings(path)
    if values.get("model_family") != "trimip":
        return None
    section = values.get("trimip") or {}
    if not isinstance(section, dict):
        raise MipNerfError(f"config {path}: `trimip:` must be a mapping of setting: value")
    return TriMipSettings.model_validate(section)


def bench_model(config: str) -> tuple[str, ModelSettings]:
    """(name, model settings) of bench's --config: paper (the reference defaults), a packaged
    config (its name) or a yaml file (its file name); only the `model:` section is read."""
    if config == "paper":
        return "paper", ModelSettings()
    path = find_config(config)
    values = load_yaml_settings(path).get("model") or {}
    if not isinstance(values, dict):
        raise MipNerfError(f"config {path}: `model:` must be a mapping of setting: value")
    return (config if "/" not in config else path.name), ModelSettings.model_validate(values)
