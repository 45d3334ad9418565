"""The one protocol every model family implements: what rendering, training, the CPU fast
path, export and the viewer ask of a model, so that none of them asks which model it holds.

A family is a subclass of :class:`RadianceField` registered in ``core/models/__init__.py``
(``FAMILIES``); its hyper-parameters are a frozen dataclass (``config_type``), recorded in a
checkpoint as ``model_family`` + ``model_config`` and rebuilt by ``core.models.build``.

Shapes: N rays; a batch of rays is a :class:`~mipnerf_cli.core.rays.RayBundle`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from mipnerf_cli.core.rays import RayBundle

__all__ = ["LevelOutput", "RadianceField", "Noise"]

# A pass's random numbers drawn beforehand: one dict of tensors per level, each with the
# rays' batch shape in front, so slicing the ray axes gives a subset's numbers.
Noise = list[dict[str, torch.Tensor]]


class LevelOutput(NamedTuple):
    """What one sampling level renders for N rays."""

    rgb: torch.Tensor  # (N, 3)
    distance: torch.Tensor  # (N,) expected termination distance (near where nothing is hit)
    acc: torch.Tensor  # (N,) accumulated opacity


class RadianceField(nn.Module):
    """Base class of a model family.

    Subclasses set ``family`` (the name checkpoints record) and ``config_type`` (a frozen
    dataclass of hyper-parameters), keep their config as ``self.config``, and implement
    :meth:`forward` and :meth:`density_at`. The rest has defaults that fit any model whose
    rays are independent of each other.
    """

    family: ClassVar[str]
    config_type: ClassVar[type]
    # Whether the CPU fast path (core/fast.py: cache-sized blocks of rays over worker threads)
    # pays for this family; `runtime.Runtime.uses_fast_path` asks this and nothing else.
    # A family that says so and returns a shape from `matmul_shape` also takes `kernel=`
    # (a `core.kernels.DenseKernel`) in `forward` and `render_last_level`.
    supports_fast_path: ClassVar[bool] = False
    config: Any

    def draw_noise(
        self,
        batch_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Noise:
        """Every random number a randomized forward pass over rays of `batch_shape` uses, drawn
        in the order the pass itself draws them. Default: none."""
        return []

    def forward(
        self,
        rays: RayBundle,
        randomized: bool,
        white_bkgd: bool,
        generator: torch.Generator | None = None,
        noise: Noise | None = None,
        last_level_only: bool = False,
    ) -> list[LevelOutput]:
        """Render N rays at every level, coarse first (training's loss takes them all);
        `last_level_only` may skip work the last level does not need."""
        raise NotImplementedError

    def render_last_level(self, rays: RayBundle, white_bkgd: bool) -> LevelOutput:
        """The last level of a deterministic pass (what eval, render, the viewer and export
        show), in one plain pass. rays: N rays (flat). Returns rgb (N, 3), distance (N,), acc (N,)."""
        return self(rays, randomized=False, white_bkgd=white_bkgd, last_level_only=True)[-1]

    def matmul_shape(self, rays: int) -> tuple[int, int, int] | None:
        """The family's dominant matmul (M, K, N) for a block of `rays` rays, at which the fast
        path picks the faster CPU kernel (`core.kernels`); None: no choice, `kernel=` is never
        passed. Default: None."""
        return None

    def density_at(self, points: torch.Tensor, variance: float) -> torch.Tensor:
        """The density the model gives isotropic Gaussians centred at `points` (export's query).

        points: (N, 3);  variance: per-axis variance of each Gaussian, the footprint of one
        training pixel there (>= 0). Returns (N,) densities >= 0.
        """
        raise NotImplementedError

    def before_step(self, step: int) -> None:
        """Called by training before each optimisation step (e.g. to refresh an occupancy
        grid); deterministic in `step` so that resume and ranks agree. Default: nothing."""

    def config_dict(self) -> dict[str, Any]:
        """The hyper-parameters as plain data (a checkpoint's ``model_config``)."""
        return dataclasses.asdict(self.config)
