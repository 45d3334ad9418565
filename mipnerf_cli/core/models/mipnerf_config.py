"""The hyper-parameters of the mip-NeRF model, declared once (numbers only, no torch).

`ModelConfig` is what the model is built from and what a checkpoint records as
``model_config``; ``settings.ModelSettings`` (the ``model:`` section of a config file) is
derived from its fields, so a field, default, bound or description is written here and
nowhere else. This module imports no torch, so that reading settings stays quick.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


def hyper(default: Any, help: str, **bounds: Any) -> Any:
    """A hyper-parameter field: its default, a one-line description and its bounds (``ge``,
    ``gt``, ``le``, ``lt``), which the settings check when a config file is read."""
    return dataclasses.field(default=default, metadata={"help": help, **bounds})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of MipNerf; the defaults are the reference's (paper) values."""

    num_samples: int = hyper(128, "samples per level", ge=1)
    num_levels: int = hyper(2, "coarse + fine = 2", ge=1)
    resample_padding: float = hyper(0.01, "added to the coarse weights before resampling", ge=0)
    stop_level_grad: bool = hyper(True, "no gradient from the fine level into the coarse weights")
    use_viewdirs: bool = hyper(True, "condition colour on the view direction")
    lindisp: bool = hyper(False, "sample linearly in disparity")
    ray_shape: Literal["cone", "cylinder"] = hyper("cone", "cone (mip-NeRF) or cylinder")
    min_deg_point: int = hyper(0, "lowest IPE frequency 2^min_deg", ge=0)
    max_deg_point: int = hyper(16, "IPE uses frequencies below 2^max_deg", ge=1)
    deg_view: int = hyper(4, "view-direction encoding degrees", ge=0)
    density_noise: float = hyper(0.0, "std of noise added to raw density while training", ge=0)
    density_bias: float = hyper(-1.0, "shift of raw density before softplus")
    rgb_padding: float = hyper(0.001, "colour range widened to [-p, 1+p]", ge=0)
    disable_integration: bool = hyper(False, "NeRF mode: point samples, plain positional encoding")
    netdepth: int = hyper(8, "layers of the trunk MLP", ge=1)
    netwidth: int = hyper(256, "width of the trunk MLP", ge=1)
    netdepth_condition: int = hyper(1, "layers of the view-conditioned branch", ge=1)
    netwidth_condition: int = hyper(128, "width of the view-conditioned branch", ge=1)
    skip_layer: int = hyper(4, "the trunk input is concatenated again after this many layers", ge=1)

    def __post_init__(self) -> None:
        if self.ray_shape not in ("cone", "cylinder"):
            raise ValueError(f"ray_shape must be 'cone' or 'cylinder', not {self.ray_shape!r}")
        for name in ("num_samples", "num_levels", "netdepth", "netwidth", "skip_layer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")

    @property
    def point_features(self) -> int:
        """Width of the encoding of a sample: sin and cos of 3 axes at each degree."""
        return 2 * 3 * (self.max_deg_point - self.min_deg_point)

    @property
    def view_features(self) -> int:
        """Width of the view-direction encoding (the direction itself plus sin and cos), 0 if unused."""
        return 3 + 2 * 3 * self.deg_view if self.use_viewdirs else 0
