"""The model families, behind one protocol (`base.RadianceField`).

base.py     the protocol: render a batch of rays, the last level for display, densities for
            export, the fast-path flag, a per-step hook, the config a checkpoint records
mipnerf.py  the paper's model (google/mipnerf internal/models.py)
trimip.py   mip-mapped tri-planes + a small MLP + an occupancy grid (Tri-MipRF; `--config fast`)

A new family is one module here with a `RadianceField` subclass, added to ``FAMILIES``;
`build` is how training and checkpoints make one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from mipnerf_cli.core.models.base import LevelOutput, RadianceField
from mipnerf_cli.core.models.mipnerf import MipNerf, ModelConfig
from mipnerf_cli.core.models.trimip import TriMipConfig, TriMipRF

__all__ = [
    "FAMILIES",
    "DEFAULT_FAMILY",
    "LevelOutput",
    "MipNerf",
    "ModelConfig",
    "RadianceField",
    "TriMipConfig",
    "TriMipRF",
    "build",
    "config_fields",
]

FAMILIES: dict[str, type[RadianceField]] = {MipNerf.family: MipNerf, TriMipRF.family: TriMipRF}
DEFAULT_FAMILY = MipNerf.family  # what checkpoints written before families existed hold


def config_fields(family: str) -> set[str]:
    """The hyper-parameter names of `family` (ValueError for an unknown family)."""
    return {f.name for f in dataclasses.fields(_family(family).config_type)}


def build(family: str, config: dict[str, Any], generator: torch.Generator | None = None) -> RadianceField:
    """A new model of `family` with these hyper-parameters, its weights drawn from `generator`
    (None: torch's global generator). ValueError for an unknown family or setting."""
    cls = _family(family)
    unknown = sorted(set(config) - config_fields(family))
    if unknown:
        raise ValueError(f"unknown {family} model settings: {', '.join(unknown)}")
    return cls(cls.config_type(**config), generator=generator)


def _family(family: str) -> type[RadianceField]:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[family]
