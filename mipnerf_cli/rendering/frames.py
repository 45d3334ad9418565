"""The frames of a camera path, and the camera_path.json files that hold them.

A path file is nerfstudio's ``camera_path.json`` (what its viewer and Blender add-on export):

    {"render_width": W, "render_height": H, "fps": 24, "seconds": 5,
     "camera_path": [{"camera_to_world": [16 numbers, row-major 4x4], "fov": 50, "aspect": 1.5}, ...]}

`fov` is the vertical field of view in degrees (focal = H/2 / tan(fov/2), as nerfstudio's
`three_js_perspective_camera_focal_length`); `aspect` is read but W/H decide the size. The
cameras use the NeRF convention (look along -z, +y up), as nerfstudio's do.

:func:`write_camera_path` is the one writer: `mipnerf render`'s ``cameras.json`` and the
viewer's keyframes. It adds the exact `focal`, `width` and `height` of every frame, so
`--path cameras.json` renders the same frames again bit for bit (the focal is not rebuilt
from the rounded fov).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Optional

import torch

from mipnerf_cli.core.camera_paths import focal_from_vertical_fov, rigid_transform_error, vertical_fov_from_focal
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import write_bytes_atomically

RIGID_TOLERANCE = 1e-4  # |R^T R - I|, |det R - 1|: float32 poses from a viewer are well inside
REQUIRED_KEYS = ("camera_path", "render_width", "render_height")
FRAME_KEYS = ("camera_to_world", "fov")


@dataclasses.dataclass
class PathFrames:
    """The cameras of every frame of a path."""

    poses: torch.Tensor  # (F, 3, 4) float64 camera-to-world
    focals: torch.Tensor  # (F,) float64, pixels
    width: int
    height: int
    fps: Optional[float] = None  # the path's own frame rate (a file's), else --fps
    radius: Optional[float] = None  # the circle's radius (spheric only)

    def __len__(self) -> int:
        return self.poses.shape[0]


def resized(
    frames: PathFrames, downscale: float, resolution: Optional[tuple[int, int]], flag: str = "--downscale"
) -> PathFrames:
    """`frames` at WxH `resolution` if given, else at 1/`downscale` of their size; the field of
    view stays (the focal follows the width). flag: the spelling of the divisor's flag that the
    message names (`mipnerf render --scale`, the older spelling, when that was given)."""
    if resolution is not None:
        width, height = resolution
    else:
        if round(frames.width / downscale) < 1 or round(frames.height / downscale) < 1:
            raise MipNerfError(
                f"{flag} {downscale:g}: the path's frames are {frames.width}x{frames.height} at full size, so they "
                f"would be smaller than one pixel; use {flag} {min(frames.width, frames.height)} or less, or --resolution WxH"
            )
        width, height = round(frames.width / downscale), round(frames.height / downscale)
    if (width, height) == (frames.width, frames.height):
        return frames
    return dataclasses.replace(frames, focals=frames.focals * width / frames.width, width=width, height=height)


def read_camera_path(path: Path) -> PathFrames:
    """Read a nerfstudio camera_path.json (or a render's cameras.json); MipNerfError naming the
    file and the key for anything that is not a usable camera path."""
    if not path.is_file():
        raise MipNerfError(f"camera path {path} not found; pass a camera_path.json or a render's cameras.json")
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise MipNerfError(f"{path}: not valid JSON{where}; fix or re-export the camera path") from None
    if not isinstance(document, dict):
        raise MipNerfError(f"{path}: not a camera path (expected a JSON object with {', '.join(REQUIRED_KEYS)})")
    for key in REQUIRED_KEYS:
        if key not in document:
            raise MipNerfError(
                f"{path}: not a camera path: missing '{key}' (nerfstudio's camera_path.json has {', '.join(REQUIRED_KEYS)})"
            )
    width, height = (_positive_int(path, document, key) for key in ("render_width", "render_height"))
    entries = document["camera_path"]
    if not isinstance(entries, list):
        raise MipNerfError(f"{path}: 'camera_path' must be a list of cameras")
    if not entries:
        raise MipNerfError(f"{path}: 'camera_path' is empty; a path needs at least one frame")
    matrices, focals = [], []
    for index, entry in enumerate(entries):
        where = f"{path}: camera_path[{index}]"
        if not isinstance(entry, dict):
            raise MipNerfError(f"{where} is not an object with {' and '.join(FRAME_KEYS)}")
        for key in FRAME_KEYS:
            if key not in entry:
                raise MipNerfError(f"{where} has no '{key}' (every camera needs {' and '.join(FRAME_KEYS)})")
        matrices.append(_matrix(where, entry["camera_to_world"]))
        focals.append(_focal(where, entry, width, height))
    matrices = torch.stack(matrices)
    errors = rigid_transform_error(matrices)
    bad = int(errors.argmax())
    if float(errors[bad]) > RIGID_TOLERANCE:
        raise MipNerfError(
            f"{path}: camera_path[{bad}].camera_to_world is not a rigid transform (off by {float(errors[bad]):.3g}: "
            "its rotation must be orthonormal with determinant 1, its last row 0 0 0 1)"
        )
    return PathFrames(
        poses=matrices[:, :3, :4].contiguous(),
        focals=torch.tensor(focals, dtype=torch.float64),
        width=width,
        height=height,
        fps=_frame_rate(path, document, len(entries)),
    )


def _positive_int(path: Path, document: dict, key: str) -> int:
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise MipNerfError(f"{path}: '{key}' must be a positive whole number of pixels, got {value!r}")
    return int(value)


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _matrix(where: str, value) -> torch.Tensor:
    flat = value if isinstance(value, list) else None
    if flat is not None and len(flat) == 4 and all(isinstance(row, list) for row in flat):
        flat = [item for row in flat for item in row]  # a nested 4x4 is accepted too
    numbers = [_number(item) for item in flat] if flat is not None else []
    if len(numbers) != 16 or any(item is None for item in numbers):
        raise MipNerfError(f"{where}.camera_to_world must be 16 numbers (a 4x4 matrix, row by row)")
    return torch.tensor(numbers, dtype=torch.float64).view(4, 4)


def _focal(where: str, entry: dict, width: int, height: int) -> float:
    fov = _number(entry["fov"])
    if fov is None or not 0 < fov < 180:
        raise MipNerfError(
            f"{where}.fov is {entry['fov']!r}; a vertical field of view must be between 0 and 180 degrees"
        )
    if "focal" not in entry:
        return float(focal_from_vertical_fov(torch.tensor(fov), height))
    # A render's own cameras.json: the exact focal, for the exact frame size.
    focal = _number(entry["focal"])
    if focal is None or focal <= 0:
        raise MipNerfError(f"{where}.focal must be a positive number of pixels, got {entry['focal']!r}")
    if (entry.get("width", width), entry.get("height", height)) != (width, height):
        raise MipNerfError(
            f"{where} is {entry.get('width')}x{entry.get('height')} but the path is {width}x{height}; "
            "every frame of a path has the same size"
        )
    return focal


def _frame_rate(path: Path, document: dict, count: int) -> Optional[float]:
    for key, rate in (("fps", lambda v: v), ("seconds", lambda v: count / v)):
        if key in document:
            value = _number(document[key])
            if value is None or value <= 0:
                raise MipNerfError(f"{path}: '{key}' must be a positive number, got {document[key]!r}")
            return rate(value)
    return None


def camera_path_document(frames: PathFrames, fps: float, seconds: Optional[float] = None) -> dict:
    """`frames` as a nerfstudio camera_path.json, with each frame's exact focal and size added.

    seconds: the path's duration (default: one frame every 1/fps seconds); a viewer's keyframes
    give their own.
    """
    if len(frames) == 0:
        raise MipNerfError("no cameras to write; a camera path needs at least one")
    if frames.width < 1 or frames.height < 1 or fps <= 0 or (seconds is not None and seconds <= 0):
        raise MipNerfError(f"bad camera path settings: {frames.width}x{frames.height}, {fps} fps, {seconds} s")
    bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    fovs = vertical_fov_from_focal(frames.focals, frames.height)
    cameras = []
    for pose, focal, fov in zip(frames.poses.to(torch.float64), frames.focals.tolist(), fovs.tolist()):
        cameras.append(
            {
                "camera_to_world": torch.cat([pose[:3], bottom]).flatten().tolist(),
                "fov": fov,
                "aspect": frames.width / frames.height,
                "focal": focal,
                "width": frames.width,
                "height": frames.height,
            }
        )
    return {
        "camera_type": "perspective",
        "render_width": frames.width,
        "render_height": frames.height,
        "fps": float(fps),
        "seconds": float(seconds) if seconds is not None else len(frames) / fps,
        "camera_path": cameras,
    }


def write_camera_path(path: Path, frames: PathFrames, fps: float, seconds: Optional[float] = None) -> None:
    """Write `frames` as a camera_path.json (:func:`camera_path_document`) at `path`, atomically:
    the one writer of the format (`mipnerf render`'s cameras.json, the viewer's keyframes)."""
    document = camera_path_document(frames, fps, seconds)
    write_bytes_atomically(Path(path), json.dumps(document, indent=1).encode())
