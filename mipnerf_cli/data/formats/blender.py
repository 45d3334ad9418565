"""Blender (NeRF-synthetic) scenes as an ImageSet: ``transforms_<split>.json`` plus one RGBA
PNG per frame, composited on white by default, near 2 and far 6 as in the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mipnerf_cli.data.cameras import SplitCameras, focal_from_camera_angle, pix2cam_matrices
from mipnerf_cli.data.formats.transforms import check_image_sizes, read_blender_split
from mipnerf_cli.data.images import load_rgba_into
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.errors import MipNerfError

BLENDER_NEAR = 2.0
BLENDER_FAR = 6.0


def unique_names(file_paths: list[str]) -> list[str]:
    """Image names: the file names without .png, or the relative paths when names repeat."""
    relative = [p[:-4] if p.lower().endswith(".png") else p for p in file_paths]
    relative = [p[2:] if p.startswith("./") else p for p in relative]
    names = [Path(p).name for p in relative]
    return names if len(set(names)) == len(names) else relative


def blender_cameras(scene_dir: Path, split: str, downscale: int = 1) -> SplitCameras:
    """The cameras of one split of a Blender scene (near 2, far 6, lossmult 1, level 0), from its
    transforms json and the PNG headers; `downscale` times smaller than the files (module docstring
    of ``load_blender``: the focal length follows from the new width)."""
    if not isinstance(downscale, int) or downscale < 1:
        raise MipNerfError(f"downscale must be a positive integer, got {downscale!r}")
    parsed = read_blender_split(scene_dir, split)
    height, width = check_image_sizes(
        parsed, downscale, f" (the --downscale factor {downscale})" if downscale > 1 else ""
    )
    height, width = height // downscale, width // downscale
    count = len(parsed.frames)
    focal = float(focal_from_camera_angle(width, parsed.camera_angle_x))
    cam2world = torch.tensor(np.array([np.asarray(f.transform_matrix, dtype=np.float64)[:3] for f in parsed.frames]))
    return SplitCameras(
        names=unique_names([frame.file_path for frame in parsed.frames]),
        files=[frame.image_path for frame in parsed.frames],
        heights=[height] * count,
        widths=[width] * count,
        levels=[0] * count,
        cam2world=cam2world,
        focal=torch.full((count,), focal, dtype=torch.float64),
        pix2cam=torch.from_numpy(pix2cam_matrices([focal] * count, [width] * count, [height] * count)),
        lossmult=torch.ones(count, dtype=torch.float32),
        near=BLENDER_NEAR,
        far=BLENDER_FAR,
        multiscale=False,
    )


def load_blender(
    scene_dir: Path,
    split: str,
    white_bkgd: bool = True,
    downscale: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImageSet:
    """One split of a Blender scene as an ImageSet (its cameras: :func:`blender_cameras`).

    downscale: integer factor; each downscale x downscale block of the RGBA image is averaged
    (float32, alpha included, before compositing; rounded to uint8) and the focal length
    follows from the new width, as the reference's half-resolution option does.
    """
    cameras = blender_cameras(scene_dir, split, downscale)
    pixels = load_rgba_into(cameras.files, cameras.sizes, downscale, workers, progress)
    return ImageSet.from_cameras(cameras, pixels, white_bkgd)
