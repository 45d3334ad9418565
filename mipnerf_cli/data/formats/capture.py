"""Real captures in other tools' formats, brought to the one form the LLFF loader builds rays from.

Three formats describe a capture's cameras (``capture_format`` tells them apart, first match):

- ``poses_bounds``: LLFF's ``poses_bounds.npy`` (google/mipnerf's own format; ``mipnerf
  convert`` writes it next to a ``transforms.json`` that records the scene kind);
- ``nerfstudio``: a ``transforms.json`` of nerfstudio / instant-ngp (``formats/nerfstudio.py``);
- ``colmap``: a COLMAP model folder ``sparse/0`` (or ``sparse``) beside ``images/`` (``formats/colmap.py``).

The last two are read as a ``CaptureCameras`` (OpenGL camera-to-world matrices, pinhole
intrinsics, bounds) and turned into LLFF's arrays (``llff_poses``), so the same pipeline
(``formats/llff.py``: bound scaling, recentring, spherify, NDC, llffhold split) builds their rays.

numpy only, no torch: ``resolve_spherify`` runs while the settings are resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np

from mipnerf_cli.data.formats.capture_cameras import (
    POSES_BOUNDS,
    TRANSFORMS,
    CaptureCameras,
    colmap_model_folder,
    recorded_scene_kind,
)
from mipnerf_cli.data.formats.llff_poses import llff_from_opengl
from mipnerf_cli.data.layout import detect_scene_kind, fallback_bounds
from mipnerf_cli.errors import MipNerfError

CaptureFormat = Literal["poses_bounds", "nerfstudio", "colmap"]
FORMAT_NAMES = {
    "poses_bounds": f"an LLFF scene ({POSES_BOUNDS})",
    "nerfstudio": f"a nerfstudio / instant-ngp scene ({TRANSFORMS})",
    "colmap": "a COLMAP model (sparse/0)",
}


def capture_format(path: Path) -> Optional[CaptureFormat]:
    """Which capture format the scene folder ``path`` holds (module docstring order), or None."""
    path = Path(path)
    if (path / POSES_BOUNDS).is_file():
        return "poses_bounds"
    if (path / TRANSFORMS).is_file():
        return "nerfstudio"
    if colmap_model_folder(path) is not None:
        return "colmap"
    return None


def read_capture_cameras(path: Path, factor: int = 0) -> CaptureCameras:
    """The cameras of a nerfstudio or COLMAP scene folder (``capture_format`` "nerfstudio" / "colmap")."""
    kind = capture_format(path)
    # Imported here: they need PIL and cv2, which resolving settings (resolve_spherify) rarely does.
    if kind == "nerfstudio":
        from mipnerf_cli.data.formats.nerfstudio import read_nerfstudio

        return read_nerfstudio(path, factor)
    if kind == "colmap":
        from mipnerf_cli.data.formats.colmap import read_colmap

        return read_colmap(path, factor)
    raise MipNerfError(f"{path}: holds no {TRANSFORMS} or sparse/0 COLMAP model")


def resolve_spherify(path: Path | str, spherify: Optional[bool]) -> bool:
    """Whether the capture at ``path`` is spherified (360°, no NDC): ``spherify`` when the user
    said; else the kind a converted capture records in transforms.json; else, for nerfstudio and
    COLMAP scenes, the kind detected from the camera layout; else False (LLFF's default)."""
    if spherify is not None:
        return bool(spherify)
    path = Path(path)
    kind = capture_format(path)
    if kind is None:
        return False
    recorded = recorded_scene_kind(path)
    if recorded is not None:
        return recorded == "360"
    if kind == "poses_bounds":
        return False
    cameras = read_capture_cameras(path)
    return detect_scene_kind(cameras.cam2world, cameras.points) == "360"


def llff_poses(cameras: CaptureCameras) -> tuple[np.ndarray, np.ndarray]:
    """LLFF's arrays of ``cameras``: (N, 3, 5) float64 poses ``[down, right, back, position,
    (H, W, fx)]`` (as poses_bounds.npy holds them) and (N, 2) bounds."""
    hwf = np.stack([cameras.sizes[:, 0], cameras.sizes[:, 1], cameras.intrinsics[:, 0]], -1).astype(np.float64)
    poses = llff_from_opengl(cameras.cam2world, hwf)
    if cameras.bounds is None:
        return poses, fallback_bounds(cameras.cam2world)
    return poses, cameras.bounds
