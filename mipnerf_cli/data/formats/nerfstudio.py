"""nerfstudio / instant-ngp ``transforms.json`` scenes (Polycam, Record3D, ns-process-data,
colmap2nerf, ``mipnerf convert``) read as a ``CaptureCameras``.

What is read, per the two projects' documented format:

- intrinsics ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` at the top level (one camera) or in
  each frame (a frame's value wins); ``camera_angle_x`` / ``camera_angle_y`` (radians) stand in
  for a missing ``fl_x`` / ``fl_y``; ``fl_y`` defaults to ``fl_x``, ``cx`` / ``cy`` to the image
  centre, ``w`` / ``h`` to the image's size;
- ``camera_model`` (default OPENCV, as nerfstudio) with ``k1, k2, k3, p1, p2``: distorted
  images are undistorted to pinhole ones as they are read (``data/undistort.py``); a fisheye
  or equirectangular camera (instant-ngp: ``"is_fisheye": true``), or a non-zero ``k4``
  (fisheye only), is refused (undistort first);
- each frame's ``file_path`` relative to the json's folder, with or without its extension;
  ``--factor F`` reads ``images_F/<file name>`` (nerfstudio's downscaled copies);
- each frame's ``transform_matrix``: camera-to-world, 4x4 (or 3x4), OpenGL camera axes;
- per-frame ``near`` / ``far`` when every frame has them (``mipnerf convert`` writes them),
  otherwise the fallback bounds of ``data/layout.py``;
- ``scene_kind`` ("forward-facing" / "360", ``mipnerf convert``).

``applied_transform`` (the transform nerfstudio applied to the COLMAP world, already part of
the poses) and ``aabb_scale`` (instant-ngp's ray-marching grid size) are checked but change no
ray: the loader recentres and scales the cameras itself.

Frames are sorted by file path, so the split (every llffhold-th image) is the one the same
scene gets as ``poses_bounds.npy`` with its images sorted by name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mipnerf_cli.data.formats.capture_cameras import (
    TRANSFORMS,
    CaptureCameras,
    check_bounds,
    check_distortion,
    distortion_or_none,
    image_with_extension,
    recorded_scene_kind,
)
from mipnerf_cli.data.formats.transforms import check_frame, check_matrix, is_number, read_json
from mipnerf_cli.data.undistort import opencv_coefficients
from mipnerf_cli.errors import MipNerfError

PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
DISTORTION_KEYS = ("k1", "k2", "k3", "p1", "p2")


def _number(meta: dict, frame: dict, key: str, where: str) -> float | None:
    value = frame.get(key, meta.get(key))
    if value is None:
        return None
    if not is_number(value):
        raise MipNerfError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError as error:
        raise MipNerfError(f"{path}: cannot read the image ({error})") from None


def _frame_file(folder: Path, file_path: Any, factor: int, where: str) -> tuple[Path, Path]:
    """(full-resolution file, file at ``factor``) of a frame."""
    if not isinstance(file_path, str) or not file_path:
        raise MipNerfError(f"{where}.file_path must be a non-empty string")
    full = image_with_extension(folder / file_path)
    if not full.is_file():
        raise MipNerfError(f"{full}: image file not found ({where}); restore it or remove its frame from the json")
    if factor == 0:
        return full, full
    small = folder / f"images_{factor}" / full.name
    if not small.is_file():
        raise MipNerfError(
            f"{small}: image file not found; --factor {factor} reads images_{factor}/ (each image shrunk "
            f"{factor} times, as nerfstudio's ns-process-data writes it), or choose another factor (0: full size)"
        )
    return full, small


def _intrinsics(meta: dict, frame: dict, full: Path, where: str) -> tuple[list[float], tuple[int, int], np.ndarray]:
    """([fx, fy, cx, cy], (h, w), (8,) OpenCV distortion coefficients) of one frame at full resolution."""
    model = frame.get("camera_model", meta.get("camera_model", "OPENCV"))
    if frame.get("is_fisheye", meta.get("is_fisheye")) is True:  # instant-ngp's colmap2nerf marks fisheyes so
        model = "fisheye (is_fisheye)"
    if model not in PINHOLE_MODELS:
        raise MipNerfError(
            f"{where}: camera model {model!r} is not a pinhole; undistort the images to a pinhole camera first "
            f"(readable models: {', '.join(PINHOLE_MODELS)})"
        )
    coefficients = {key: _number(meta, frame, key, where) or 0.0 for key in DISTORTION_KEYS}
    check_distortion(model, {"k4": _number(meta, frame, "k4", where) or 0.0}, where)
    if model != "OPENCV":
        check_distortion(model, coefficients, where)
    w, h = _number(meta, frame, "w", where), _number(meta, frame, "h", where)
    if w is None or h is None:
        h_file, w_file = _image_size(full)
        w, h = w or w_file, h or h_file
    if w < 1 or h < 1 or w != int(w) or h != int(h):
        raise MipNerfError(f"{where}: 'w' and 'h' must be positive whole pixel counts, got {w:g} x {h:g}")
    fx, fy = _number(meta, frame, "fl_x", where), _number(meta, frame, "fl_y", where)
    angle_x, angle_y = _number(meta, frame, "camera_angle_x", where), _number(meta, frame, "camera_angle_y", where)
    for name, angle in (("camera_angle_x", angle_x), ("camera_angle_y", angle_y)):
        if angle is not None and not 0 < angle < math.pi:
            raise MipNerfError(f"{where}: '{name}' must be radians in (0, pi), got {angle:g}")
    if fx is None and angle_x is not None:
        fx = 0.5 * w / math.tan(0.5 * angle_x)
    if fy is None and angle_y is not None:
        fy = 0.5 * h / math.tan(0.5 * angle_y)
    if fx is None:
        raise MipNerfError(
            f"{where}: no focal length; give 'fl_x' (pixels) or 'camera_angle_x' (radians), "
            "at the top level or in every frame"
        )
    fy = fx if fy is None else fy
    if fx <= 0 or fy <= 0:
        raise MipNerfError(f"{where}: focal lengths must be positive, got fl_x {fx:g}, fl_y {fy:g}")
    cx, cy = _number(meta, frame, "cx", where), _number(meta, frame, "cy", where)
    intrinsics = [fx, fy, w / 2 if cx is None else cx, h / 2 if cy is None else cy]
    return intrinsics, (int(h), int(w)), opencv_coefficients(coefficients)


def _check_optional(meta: dict, json_path: Path) -> None:
    if "applied_transform" in meta:
        check_matrix(meta["applied_transform"], f"{json_path}: 'applied_transform'", rows=(3, 4))
    if "aabb_scale" in meta and not (is_number(meta["aabb_scale"]) and meta["aabb_scale"] > 0):
        raise MipNerfError(f"{json_path}: 'aabb_scale' must be a positive number, got {meta['aabb_scale']!r}")


def read_nerfstudio(folder: Path, factor: int = 0) -> CaptureCameras:
    """The cameras of the nerfstudio / instant-ngp scene ``folder/transforms.json`` (module docstring)."""
    folder = Path(folder)
    json_path = folder / TRANSFORMS
    meta = read_json(json_path)
    if not isinstance(meta, dict):
        raise MipNerfError(f"{json_path}: expected a JSON object with 'frames' and the camera intrinsics")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise MipNerfError(f"{json_path}: 'frames' must be a non-empty list of images and their poses")
    _check_optional(meta, json_path)
    scene_kind = recorded_scene_kind(folder)
    rows = []
    for i, frame in enumerate(frames):
        where = f"{json_path}: frames[{i}]"
        check_frame(frame, where)
        full, file = _frame_file(folder, frame["file_path"], factor, where)
        intrinsics, size, coefficients = _intrinsics(meta, frame, full, where)
        near, far = _number({}, frame, "near", where), _number({}, frame, "far", where)
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)[:3]
        rows.append((str(frame["file_path"]), file, c2w, intrinsics, size, near, far, coefficients))
    rows.sort(key=lambda row: row[0])
    names = [row[1] for row in rows]
    if len(set(names)) != len(names):
        raise MipNerfError(f"{json_path}: two frames name the same image file; each image must appear once")
    with_bounds = [row[5] is not None and row[6] is not None for row in rows]
    bounds = None
    if all(with_bounds):
        bounds = np.array([[row[5], row[6]] for row in rows], dtype=np.float64)
        check_bounds(bounds, json_path)
    elif any(with_bounds):
        raise MipNerfError(
            f"{json_path}: {with_bounds.count(False)} of {len(rows)} frames have no 'near' / 'far'; "
            "give them to every frame or to none (then they are estimated from the camera layout)"
        )
    c2w = np.stack([row[2] for row in rows])
    rotation_error = np.abs(np.linalg.det(c2w[:, :3, :3]) - 1.0)
    bad = np.flatnonzero(rotation_error > 1e-2)
    if bad.size:
        raise MipNerfError(
            f"{json_path}: the transform_matrix of {rows[bad[0]][0]} is not a rotation and a position "
            "(its 3x3 part has determinant != 1); export the poses again"
        )
    return CaptureCameras(
        files=names,
        cam2world=c2w,
        intrinsics=np.array([row[3] for row in rows], dtype=np.float64),
        sizes=np.array([row[4] for row in rows], dtype=np.int64),
        bounds=bounds,
        points=None,
        scene_kind=scene_kind,
        source=json_path,
        distortion=distortion_or_none([row[7] for row in rows]),
    )
