"""Reading and checking a Blender scene's ``transforms_<split>.json`` (shared by the loader
and ``mipnerf convert``); every problem becomes a MipNerfError naming the file and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from mipnerf_cli.data.images import png_size
from mipnerf_cli.errors import MipNerfError

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class BlenderFrame:
    """One frame: where its PNG is and its camera-to-world matrix exactly as parsed."""

    file_path: str
    image_path: Path
    transform_matrix: list


@dataclasses.dataclass(frozen=True)
class BlenderSplit:
    """A parsed and checked ``transforms_<split>.json``."""

    json_path: Path
    camera_angle_x: float
    frames: list[BlenderFrame]


def transforms_path(scene_dir: Path, split: str) -> Path:
    return Path(scene_dir) / f"transforms_{split}.json"


def read_json(path: Path) -> Any:
    """The parsed JSON file; MipNerfError naming the file if it is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise MipNerfError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise MipNerfError(
            f"{path}: not valid JSON (line {error.lineno} column {error.colno}: {error.msg}); fix or re-export the file"
        ) from None
    except UnicodeDecodeError:
        raise MipNerfError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except OSError as error:
        raise MipNerfError(f"{path}: cannot read ({error.strerror or error})") from None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_matrix(value: Any, where: str, rows: tuple[int, ...] = (3, 4), columns: int = 4) -> None:
    """MipNerfError unless ``value`` is a list of ``rows`` lists of ``columns`` finite numbers."""
    ok = (
        isinstance(value, list)
        and len(value) in rows
        and all(isinstance(row, list) and len(row) == columns and all(is_number(x) for x in row) for row in value)
    )
    if not ok:
        shapes = " or ".join(f"{r}x{columns}" for r in rows)
        raise MipNerfError(f"{where} must be a {shapes} matrix of finite numbers")


def resolve_image_path(scene_dir: Path, file_path: str) -> Path:
    """The PNG of a frame: ``<scene>/<file_path>.png`` as the reference builds it; a
    ``file_path`` that already ends in .png is also accepted."""
    path = Path(scene_dir) / (file_path + ".png")
    if not path.exists() and file_path.lower().endswith(".png") and (Path(scene_dir) / file_path).exists():
        return Path(scene_dir) / file_path
    return path


def read_blender_split(scene_dir: Path, split: str) -> BlenderSplit:
    """Parse and check ``transforms_<split>.json`` of ``scene_dir`` (not the images)."""
    json_path = transforms_path(scene_dir, split)
    meta = read_json(json_path)
    if not isinstance(meta, dict):
        raise MipNerfError(f"{json_path}: expected a JSON object with 'camera_angle_x' and 'frames'")
    if "camera_angle_x" not in meta:
        raise MipNerfError(f"{json_path}: missing 'camera_angle_x' (horizontal field of view in radians)")
    camera_angle_x = meta["camera_angle_x"]
    if not is_number(camera_angle_x) or not 0 < camera_angle_x < math.pi:
        raise MipNerfError(
            f"{json_path}: 'camera_angle_x' must be a number of radians in (0, pi), got {camera_angle_x!r}"
        )
    if "frames" not in meta:
        raise MipNerfError(f"{json_path}: missing 'frames' (the list of images and their poses)")
    frames_json = meta["frames"]
    if not isinstance(frames_json, list) or not frames_json:
        raise MipNerfError(f"{json_path}: 'frames' must be a non-empty list")
    frames = []
    for i, frame in enumerate(frames_json):
        check_frame(frame, f"{json_path}: frames[{i}]")
        file_path = frame["file_path"]
        frames.append(BlenderFrame(file_path, resolve_image_path(scene_dir, file_path), frame["transform_matrix"]))
    shapes = {len(frame.transform_matrix) for frame in frames}
    if len(shapes) > 1:
        raise MipNerfError(f"{json_path}: every transform_matrix must have the same shape (all 4x4 or all 3x4)")
    return BlenderSplit(json_path, float(camera_angle_x), frames)


def check_frame(frame: Any, where: str) -> None:
    """MipNerfError unless ``frame`` is an object with a non-empty string 'file_path' and a
    4x4 / 3x4 'transform_matrix' (a frame of a Blender or a nerfstudio transforms json)."""
    if not isinstance(frame, dict):
        raise MipNerfError(f"{where} must be an object with 'file_path' and 'transform_matrix'")
    for key in ("file_path", "transform_matrix"):
        if key not in frame:
            raise MipNerfError(f"{where} has no '{key}' (every frame needs 'file_path' and 'transform_matrix')")
    file_path = frame["file_path"]
    if not isinstance(file_path, str) or not file_path:
        raise MipNerfError(f"{where}.file_path must be a non-empty string")
    check_matrix(frame["transform_matrix"], f"{where}.transform_matrix")


def _frame_png_size(split: BlenderSplit, index: int) -> tuple[int, int]:
    path = split.frames[index].image_path
    if not path.exists():
        raise MipNerfError(
            f"{path}: image file not found (frames[{index}] of {split.json_path.name}); "
            "restore the file or remove its frame from the json"
        )
    return png_size(path)


def check_image_sizes(split: BlenderSplit, divisor: int = 1, what: str = "") -> tuple[int, int]:
    """The common (H, W) of a split's PNGs, read from their headers.

    MipNerfError naming the file if one is missing or not a PNG, if the sizes differ, or if
    H or W is not a multiple of ``divisor`` (``what`` says why it must be).
    """
    first = split.frames[0].image_path
    size = _frame_png_size(split, 0)
    for i, frame in enumerate(split.frames[1:], start=1):
        other = _frame_png_size(split, i)
        if other != size:
            raise MipNerfError(
                f"{frame.image_path}: image is {other[0]}x{other[1]} (HxW) but {first.name} is "
                f"{size[0]}x{size[1]}; all images of a split must have the same size"
            )
    if size[0] % divisor or size[1] % divisor:
        raise MipNerfError(
            f"{first}: image size {size[0]}x{size[1]} (HxW) is not divisible by {divisor}{what}; "
            "crop or resize the images"
        )
    return size
