"""nerfbaselines' trajectory files (``"format": "nerfbaselines-v1"``) as the frames of a path.

What ``nerfbaselines render-trajectory`` and its viewer write:

    {"format": "nerfbaselines-v1", "camera_model": "pinhole", "image_size": [W, H], "fps": 30,
     "frames": [{"pose": [12 numbers, a row-major 3x4 OpenCV camera-to-world],
                 "intrinsics": [fx, fy, cx, cy], "appearance_weights": [...]}, ...]}

Poses are OpenCV cameras (x right, y down, looking down +z), turned into this project's
OpenGL ones by `data.cameras.opengl_from_opencv`. A path has one focal per frame and the
principal point at the image centre, so frames must have fx = fy and cx, cy = W/2, H/2
(what nerfbaselines' viewer writes); appearance weights are ignored (mip-NeRF has none).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from mipnerf_cli.core.camera_paths import rigid_transform_error
from mipnerf_cli.data.cameras import opengl_from_opencv
from mipnerf_cli.errors import MipNerfError

FORMAT = "nerfbaselines-v1"
CENTRE_TOLERANCE = 1e-3  # pixels: cx, cy against W/2, H/2 (float32 files)
SQUARE_TOLERANCE = 1e-5  # relative: fx against fy
RIGID_TOLERANCE = 1e-4  # as a camera_path.json's


def read_path_file(path: Path):
    """The frames of a path file: a nerfbaselines trajectory, else a camera_path.json
    (`rendering.frames.read_camera_path`, which reports a missing or unreadable file)."""
    from mipnerf_cli.rendering.frames import read_camera_path

    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if is_trajectory(document):
        return read_trajectory(Path(path), document)
    return read_camera_path(Path(path))


def is_trajectory(document: Any) -> bool:
    """Whether a parsed JSON document is a nerfbaselines trajectory."""
    return isinstance(document, dict) and document.get("format") == FORMAT


def _numbers(where: str, value: Any, counts: tuple[int, ...]) -> list[float]:
    ok = isinstance(value, list) and len(value) in counts
    numbers = [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)] if ok else []
    if not ok or len(numbers) != len(value) or not all(math.isfinite(v) for v in numbers):
        raise MipNerfError(f"{where} must be {' or '.join(map(str, counts))} numbers")
    return numbers


def read_trajectory(path: Path, document: dict):
    """The `rendering.frames.PathFrames` of a nerfbaselines trajectory ``document`` read from
    ``path``; MipNerfError naming the file and the entry for anything mipnerf cannot render."""
    from mipnerf_cli.rendering.frames import PathFrames

    if document.get("camera_model", "pinhole") != "pinhole":
        raise MipNerfError(
            f"{path}: camera_model {document['camera_model']!r}; mipnerf renders pinhole trajectories only"
        )
    size = document.get("image_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise MipNerfError(f"{path}: 'image_size' must be [width, height] in whole pixels, got {size!r}")
    width, height = size
    entries = document.get("frames")
    if not isinstance(entries, list) or not entries:
        raise MipNerfError(f"{path}: 'frames' must be a non-empty list of cameras")
    poses, focals = [], []
    for index, entry in enumerate(entries):
        where = f"{path}: frames[{index}]"
        if not isinstance(entry, dict):
            raise MipNerfError(f"{where} is not an object with pose and intrinsics")
        pose = _numbers(f"{where}.pose", entry.get("pose"), (12, 16))
        fx, fy, cx, cy = _numbers(f"{where}.intrinsics", entry.get("intrinsics"), (4,))
        if fx <= 0 or abs(fx - fy) > SQUARE_TOLERANCE * fx:
            raise MipNerfError(f"{where}: fx {fx:g} and fy {fy:g}; mipnerf render takes square pixels (fx = fy > 0)")
        if abs(cx - width / 2) > CENTRE_TOLERANCE or abs(cy - height / 2) > CENTRE_TOLERANCE:
            raise MipNerfError(
                f"{where}: principal point ({cx:g}, {cy:g}); mipnerf render takes it at the image centre "
                f"({width / 2:g}, {height / 2:g})"
            )
        matrix = torch.eye(4, dtype=torch.float64)
        matrix[: len(pose) // 4] = torch.tensor(pose, dtype=torch.float64).view(-1, 4)
        poses.append(matrix)
        focals.append(fx)
    matrices = torch.stack(poses)
    errors = rigid_transform_error(matrices)
    bad = int(errors.argmax())
    if float(errors[bad]) > RIGID_TOLERANCE:
        raise MipNerfError(f"{path}: frames[{bad}].pose is not a rigid transform (off by {float(errors[bad]):.3g})")
    fps = document.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < math.inf):
        raise MipNerfError(f"{path}: 'fps' must be a positive number, got {fps!r}")
    return PathFrames(
        poses=torch.from_numpy(opengl_from_opencv(matrices.numpy())),
        focals=torch.tensor(focals, dtype=torch.float64),
        width=width,
        height=height,
        fps=None if fps is None else float(fps),
    )
