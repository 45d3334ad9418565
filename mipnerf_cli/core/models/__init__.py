"""The model families, behind one protocol (`base.RadianceField`).

base.py            the protocol: render a batch of rays, the last level for display, densities
                   for export, the fast-path flag, a per-step hook, the config a checkpoint records
mipnerf.py         the paper's model (google/mipnerf internal/models.py)
mipnerf_config.py  its hyper-parameters (no torch: ``settings.ModelSettings`` is derived from them)
trimip.py          mip-mapped tri-planes + a small MLP + an occupancy grid (Tri-MipRF; `--config fast`)

A new family is one module here with a `RadianceField` subclass, added to ``FAMILIES``;
`build` is how training and checkpoints make one. The model classes are imported on first
use, so that reading a family's hyper-parameters does not import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from mipnerf_cli.core.models.base import RadianceField

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

_LAZY = {
    "LevelOutput": "mipnerf_cli.core.models.base",
    "RadianceField": "mipnerf_cli.core.models.base",
    "MipNerf": "mipnerf_cli.core.models.mipnerf",
    "ModelConfig": "mipnerf_cli.core.models.mipnerf_config",
    "TriMipConfig": "mipnerf_cli.core.models.trimip",
    "TriMipRF": "mipnerf_cli.core.models.trimip",
}
DEFAULT_FAMILY = "mipnerf"  # what checkpoints written before families existed hold


def families() -> dict[str, type[RadianceField]]:
    """Family name -> model class. A new family is one entry here."""
    from mipnerf_cli.core.models.mipnerf import MipNerf
    from mipnerf_cli.core.models.trimip import TriMipRF

    return {MipNerf.family: MipNerf, TriMipRF.family: TriMipRF}


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
    known = families()
    if family not in known:
        raise ValueError(f"unknown model family {family!r} (known: {', '.join(sorted(known))})")
    return known[family]


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":
        return families()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mipnerf_cli.core.models' has no attribute {name!r}")
