"""Scenes on disk -> ImageSet (uint8 pixels, rays on demand); the converter; the demo scene.

The names below are imported on first use, so that ``mipnerf convert`` and
``mipnerf demo-scene`` (which need no torch) start without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ImageSet": "mipnerf_cli.data.imageset",
    "load_cameras": "mipnerf_cli.data.scene",
    "load_scene": "mipnerf_cli.data.scene",
    "llff_options": "mipnerf_cli.data.scene",
    "scene_kind": "mipnerf_cli.data.scene",
    "sample_batch": "mipnerf_cli.data.sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mipnerf_cli.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
