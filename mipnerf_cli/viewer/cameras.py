"""The viewer's cameras: browser (viser) cameras and the datasets' cam2world, the resolution
plan, the training views shown as frustums, and keyframes as a camera path.

viser's cameras use OpenCV axes (x right, y down, looking down +z); the datasets' cam2world
OpenGL axes (x right, y up, looking down -z), like transforms.json. The rotation between
them and quaternions is `core.quaternions`, the package's one conversion.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from mipnerf_cli.core.quaternions import quaternion_from_rotation, rotation_from_quaternion
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.frames import PathFrames

_OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])  # flips y and z: camera looks down -z, y up


@dataclasses.dataclass(frozen=True)
class ViewCamera:
    """A browser camera in the datasets' convention.

    cam2world: (3, 4) float64, OpenGL axes (x right, y up, looking down -z), like transforms.json.
    fov: vertical field of view in radians; aspect: width / height.
    """

    cam2world: np.ndarray
    fov: float
    aspect: float

    def focal(self, height: int) -> float:
        """Focal length in pixels of this camera rendered `height` pixels high."""
        return 0.5 * height / math.tan(0.5 * self.fov)


def camera_from_viser(wxyz, position, fov: float, aspect: float) -> ViewCamera:
    """A viser camera (OpenCV axes: x right, y down, looking down +z) as a ViewCamera."""
    opencv = rotation_from_quaternion(torch.as_tensor(np.asarray(wxyz, dtype=np.float64))).numpy()
    rotation = opencv @ _OPENGL_FROM_OPENCV
    cam2world = np.concatenate([rotation, np.asarray(position, dtype=np.float64).reshape(3, 1)], axis=1)
    return ViewCamera(cam2world=cam2world, fov=float(fov), aspect=float(aspect))


def viser_pose(cam2world) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) in viser's OpenCV axes of a (3, 4) or (4, 4) OpenGL cam2world."""
    c2w = np.asarray(cam2world, dtype=np.float64)
    opencv = torch.from_numpy(c2w[:3, :3] @ _OPENGL_FROM_OPENCV)
    return quaternion_from_rotation(opencv).numpy(), c2w[:3, 3].copy()


def plan_resolutions(max_size: int, aspect: float, coarse_factor: int = 4) -> list[tuple[int, int]]:
    """[(width, height), ...]: the coarse image first, then the full one (longer side = max_size).

    The coarse image is `coarse_factor` times smaller (at least 8 pixels on its shorter side
    unless the full one is smaller); when that is no smaller, the plan is the full image alone.
    """
    if max_size < 1 or aspect <= 0:
        raise ValueError(f"bad resolution {max_size} or aspect {aspect}")
    if aspect >= 1:
        full = (max_size, max(1, round(max_size / aspect)))
    else:
        full = (max(1, round(max_size * aspect)), max_size)
    shrink = max(1, coarse_factor)
    short = min(full)
    shrink = min(shrink, max(1, short // 8))
    coarse = (max(1, full[0] // shrink), max(1, full[1] // shrink))
    return [full] if coarse == full else [coarse, full]


def coarse_factor(full_pixels: int, rays_per_second: float | None, budget_s: float, minimum: int = 4) -> int:
    """How many times smaller (per side) the coarse image is than the refined one: `minimum`,
    or more when this machine's measured speed would take longer than `budget_s` for it."""
    if not rays_per_second or rays_per_second <= 0:
        return minimum
    return max(minimum, math.ceil(math.sqrt(full_pixels / (rays_per_second * budget_s))))


def nearest_training_view(position: np.ndarray, cam2world: np.ndarray) -> int:
    """Index of the training camera (cam2world (I, 3, 4)) whose centre is nearest to `position`."""
    return int(np.argmin(np.linalg.norm(cam2world[:, :3, 3] - np.asarray(position)[None], axis=1)))


def matching_level(view: ViewCamera, height: int, train_position: np.ndarray, train_focals: dict[int, float]) -> int:
    """The multiscale level whose pixel footprint at the scene centre is nearest to this view's.

    A pixel covers distance/focal at distance `distance` from the camera; this view's and each
    level's (at the nearest training camera's distance) are compared on a log scale.
    """
    mine = np.linalg.norm(view.cam2world[:3, 3]) / view.focal(height)
    theirs = {level: np.linalg.norm(train_position) / focal for level, focal in train_focals.items()}
    return min(theirs, key=lambda level: abs(math.log(theirs[level] / mine)))


def keyframe_frames(keyframes: list[ViewCamera], width: int, height: int) -> PathFrames:
    """The keyframes as the frames of a camera path of `width` x `height` (each its own fov),
    for `rendering.frames.write_camera_path`; MipNerfError when there are none."""
    if not keyframes:
        raise MipNerfError("no keyframes to export; add the current view as a keyframe first")
    if width < 1 or height < 1:
        raise MipNerfError(f"bad camera path size {width}x{height}")
    return PathFrames(
        poses=torch.from_numpy(np.stack([np.asarray(key.cam2world, dtype=np.float64)[:3] for key in keyframes])),
        focals=torch.tensor([key.focal(height) for key in keyframes], dtype=torch.float64),
        width=int(width),
        height=int(height),
    )


@dataclasses.dataclass
class TrainingViews:
    """The training cameras: cam2world (I, 3, 4), focal per image, sizes, levels, thumbnails."""

    cam2world: np.ndarray
    focal: np.ndarray
    widths: list[int]
    heights: list[int]
    levels: list[int]
    thumbnails: list[np.ndarray | None]  # full-resolution images only (one frustum per pose)
    near: float
    far: float
    multiscale: bool
    ndc: bool = False  # a forward-facing LLFF scene: the model sees NDC rays
    kind: str = "blender"

    def up_direction(self) -> np.ndarray:
        """The world's up for the orbit controls: +z for Blender scenes (their world is z-up);
        the training cameras' mean up for LLFF ones (recentred poses, about +y)."""
        if self.kind != "llff":
            return np.array([0.0, 0.0, 1.0])
        up = self.cam2world[:, :3, 1].mean(axis=0)
        return up / np.linalg.norm(up)


def load_training_views(trained, data: Path | None, thumbnail: int = 64) -> TrainingViews:
    """The train split's cameras (and small RGB thumbnails) of the run's scene, through the
    door (`runs.trained`): the scene's kind checked against the checkpoint's, an LLFF scene with
    the run's own factor, spherify and llffhold (the poses and focal it was trained on), NDC as
    the scene decides. Only the full-resolution images are decoded, for their thumbnails.
    """
    cameras = trained.scene(data).cameras("train")
    thumbnails = [
        _thumbnail(file, thumbnail, trained.white_bkgd) if level == 0 else None
        for file, level in zip(cameras.files, cameras.levels)
    ]
    return TrainingViews(
        cam2world=cameras.cam2world.numpy(),
        focal=cameras.focals.numpy(),
        widths=list(cameras.widths),
        heights=list(cameras.heights),
        levels=list(cameras.levels),
        thumbnails=thumbnails,
        near=cameras.near,
        far=cameras.far,
        multiscale=cameras.kind == "multiscale",
        ndc=cameras.ndc,
        kind=cameras.kind,
    )


def _thumbnail(file: Path, size: int, white_bkgd: bool) -> np.ndarray:
    """uint8 (h, w, 3): the image at `file` composited on its background, every n-th pixel
    (n = its height // `size`)."""
    from mipnerf_cli.data.images import read_rgba

    rgba = read_rgba(file).astype(np.float32) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]) * (1.0 if white_bkgd else 0.0)
    step = max(1, rgba.shape[0] // size)
    return (rgb[::step, ::step] * 255).round().astype(np.uint8)
