"""The one form nerfstudio and COLMAP captures are read into (``CaptureCameras``), and the
checks their readers share. ``formats/capture.py`` tells the formats apart and reads them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from mipnerf_cli.errors import MipNerfError

POSES_BOUNDS = "poses_bounds.npy"
TRANSFORMS = "transforms.json"


@dataclasses.dataclass
class CaptureCameras:
    """The cameras of a capture, one row per image, in LLFF order (images sorted by file name).

    files:      the image files at the factor asked for.
    cam2world:  (N, 3, 4) float64, OpenGL axes (x right, y up, looking down -z), the file's world frame.
    intrinsics: (N, 4) float64 pinhole fx, fy, cx, cy in pixels of the full-resolution images
                (pixel centres at +0.5, as COLMAP and nerfstudio count).
    sizes:      (N, 2) int full-resolution height, width.
    bounds:     (N, 2) float64 near / far depths, or None when the capture records none.
    points:     (P, 3) float64 sparse points (scene kind detection), or None.
    scene_kind: the kind the capture records ("forward-facing" | "360"), or None.
    source:     the file the cameras came from (for messages).
    distortion: (N, 8) float64 OpenCV distortion coefficients (k1, k2, p1, p2, k3, k4, k5, k6) of
                the images (``data/undistort.py`` makes them pinhole when read), or None: all pinhole.
    """

    files: list[Path]
    cam2world: np.ndarray
    intrinsics: np.ndarray
    sizes: np.ndarray
    bounds: Optional[np.ndarray]
    points: Optional[np.ndarray]
    scene_kind: Optional[str]
    source: Path
    distortion: Optional[np.ndarray] = None


def colmap_model_folder(path: Path) -> Optional[Path]:
    """``path/sparse/0`` or ``path/sparse`` when it holds a COLMAP model (cameras.bin or .txt)."""
    for folder in (path / "sparse" / "0", path / "sparse"):
        if (folder / "cameras.bin").is_file() or (folder / "cameras.txt").is_file():
            return folder
    return None


def recorded_scene_kind(path: Path) -> Optional[str]:
    """The "scene_kind" a converted capture's transforms.json records ("forward-facing" | "360"), or None."""
    file = Path(path) / TRANSFORMS
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the nerfstudio reader reports a broken file when it reads the cameras
    kind = meta.get("scene_kind") if isinstance(meta, dict) else None
    if kind is not None and kind not in ("forward-facing", "360"):
        raise MipNerfError(f'{file}: \'scene_kind\' must be "forward-facing" or "360", got {kind!r}')
    return kind


def image_with_extension(path: Path) -> Path:
    """``path`` if it exists, else the first of path.png / .jpg / .jpeg (either case) that does."""
    if path.is_file() or path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return path
    for ending in (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"):
        candidate = path.with_name(path.name + ending)
        if candidate.is_file():
            return candidate
    return path


def check_bounds(bounds: np.ndarray, where: Path) -> None:
    bad = np.flatnonzero(~np.isfinite(bounds).all(1) | (bounds[:, 0] <= 0) | (bounds[:, 1] <= bounds[:, 0]))
    if bad.size:
        near, far = bounds[bad[0]]
        raise MipNerfError(
            f"{where}: image {bad[0]} has near {near:g}, far {far:g}; bounds must be finite with 0 < near < far"
        )


def check_distortion(model: str, coefficients: dict[str, float], where: str) -> None:
    """MipNerfError unless the coefficients ``coefficients`` this reader cannot undistort are all zero."""
    nonzero = {name: value for name, value in coefficients.items() if value != 0}
    if nonzero:
        shown = ", ".join(f"{name}={value:g}" for name, value in nonzero.items())
        raise MipNerfError(
            f"{where}: camera model {model} with distortion ({shown}) that this loader cannot undistort; "
            "undistort the images first (`colmap image_undistorter` writes a PINHOLE model)"
        )


def distortion_or_none(rows: list[np.ndarray]) -> Optional[np.ndarray]:
    """(N, 8) distortion coefficients, or None when every one is zero."""
    array = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    return array if np.any(array != 0) else None
