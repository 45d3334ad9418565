"""Scenes on disk -> ImageSet (uint8 pixels, rays on demand); the converter; the demo scene."""

from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.data.sampler import sample_batch
from mipnerf_cli.data.scene import load_scene, scene_kind

__all__ = ["ImageSet", "load_scene", "sample_batch", "scene_kind"]
