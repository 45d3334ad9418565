"""`mipnerf train`'s settings and their resolution (the scene folder, the run name, absolute paths)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.settings.base import (
    DATA_ROOT_ENV,
    SIMPLE_NAME,
    ModelSettings,
    TriMipSettings,
    resolve_settings,
)


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


def resolve_train_settings(
    config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainSettings:
    """Defaults < `config` yaml < `overrides` (CLI flags; a nested dict for `model`).

    The result has a concrete `data` folder, `exp_name` and absolute paths.
    Raises pydantic.ValidationError for bad values, MipNerfError for a bad file.
    """
    return finish_train_settings(resolve_settings(TrainSettings, config, overrides))


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
