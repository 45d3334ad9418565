"""The hyper-parameters of the grid model (`trimip`), declared once (numbers only, no torch).

`TriMipConfig` is what `core.models.trimip.TriMipRF` is built from and what a checkpoint
records as ``model_config``; ``settings.TriMipSettings`` (the ``trimip:`` section of a config
file) is derived from its fields, as ``settings.ModelSettings`` is from `mipnerf_config`.
Sized for a CPU; Tri-MipRF's own planes are 512 texels of 16 channels.
"""

from __future__ import annotations

import dataclasses
import math

from mipnerf_cli.core.models.mipnerf_config import hyper


@dataclasses.dataclass(frozen=True)
class TriMipConfig:
    """Hyper-parameters of TriMipRF."""

    bound: float = hyper(1.5, "the scene lies in [-bound, bound]^3 (Blender scenes: 1.5)", gt=0)
    plane_resolution: int = hyper(128, "texels per side of each tri-plane at level 0 (a power of two)", ge=1)
    plane_features: int = hyper(16, "channels per plane", ge=1)
    hidden: int = hyper(64, "width of the density and colour MLPs", ge=1)
    geo_features: int = hyper(15, "features the density MLP hands to the colour MLP", ge=1)
    deg_view: int = hyper(4, "frequencies of the view-direction encoding", ge=0)
    march_steps: int = hyper(192, "marching steps across the scene cube's diagonal", ge=1)
    prefilter: bool = hyper(True, "mip level from the cone's footprint (false: point samples, the ablation)")
    density_bias: float = hyper(-1.0, "added to the raw density before exp")
    rgb_padding: float = hyper(0.001, "colour range widened to [-p, 1+p]", ge=0)
    occupancy_resolution: int = hyper(64, "occupancy grid cells per side (0: no empty-space skipping)", ge=0)
    occupancy_interval: int = hyper(16, "training steps between occupancy grid updates", ge=1)
    occupancy_warmup: int = hyper(256, "until this step every cell is evaluated at each update", ge=0)
    occupancy_threshold: float = hyper(0.01, "a cell is occupied above this opacity per step", gt=0)
    occupancy_decay: float = hyper(0.95, "decay of a cell's running opacity per update", gt=0, le=1)
    early_stop: float = hyper(
        1e-3, "skip steps behind a transmittance below this (a gradient-free pass finds them; 0: off)", ge=0, lt=1
    )
    init_scale: float = hyper(0.1, "plane features start uniform in [-s, s]", ge=0)

    def __post_init__(self) -> None:
        resolution = self.plane_resolution
        if resolution < 1 or resolution & (resolution - 1):
            raise ValueError(f"plane_resolution must be a power of two (64, 128, 256, ...), not {resolution}")
        for name in ("plane_features", "hidden", "geo_features", "march_steps", "occupancy_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.bound <= 0:
            raise ValueError(f"bound must be positive, not {self.bound}")
        if self.occupancy_resolution < 0:
            raise ValueError(f"occupancy_resolution must be >= 0, not {self.occupancy_resolution}")

    @property
    def step_size(self) -> float:
        """The marching step in world units (the cube's diagonal over march_steps)."""
        return 2 * self.bound * math.sqrt(3) / self.march_steps

    @property
    def texel_size(self) -> float:
        """The width of a level-0 texel in world units."""
        return 2 * self.bound / self.plane_resolution
