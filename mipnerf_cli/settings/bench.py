"""`mipnerf bench`'s settings and the model sections its --config names."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mipnerf_cli.config_files import find_config, load_yaml_settings
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.settings.base import (
    ModelSettings,
    TriMipSettings,
)

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
