"""A batch of rays: the one format loaders produce and the model, trainer and renderer take."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch


@dataclasses.dataclass
class RayBundle:
    """N rays; every field is float32 with leading dimension N.

    origins:    (N, 3) ray origins in world space.
    directions: (N, 3) unnormalized directions (camera-space z = -1), as the reference.
    viewdirs:   (N, 3) unit directions fed to the view-dependent branch.
    radii:      (N, 1) cone radius at distance 1 (pixel footprint * 2/sqrt(12)).
    near, far:  (N, 1) integration bounds.
    lossmult:   (N, 1) per-ray loss weight (1 single-scale, 4**level multiscale).
    """

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor
    radii: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    lossmult: torch.Tensor

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, index) -> "RayBundle":
        return RayBundle(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def to(self, device=None, dtype=None) -> "RayBundle":
        return RayBundle(
            **{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in dataclasses.fields(self)}
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @staticmethod
    def cat(bundles: Sequence["RayBundle"]) -> "RayBundle":
        return RayBundle(
            **{f.name: torch.cat([getattr(b, f.name) for b in bundles]) for f in dataclasses.fields(RayBundle)}
        )
