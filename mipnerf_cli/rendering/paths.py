"""The camera paths of `mipnerf render --path`: names to pose generators.

`--path NAME` looks NAME up in :data:`PATH_GENERATORS` (the one place a new path is added:
a function ``(settings, cameras) -> PathFrames``); `--path FILE.json` reads a camera path
file (nerfstudio's ``camera_path.json``, or a render's ``cameras.json``: `rendering.frames`;
a nerfbaselines trajectory, ``"format": "nerfbaselines-v1"``: `rendering.trajectory`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Protocol

import torch

from mipnerf_cli.core.camera_paths import interpolated_poses, mean_camera_distance, spheric_poses
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.frames import PathFrames, resized
from mipnerf_cli.rendering.trajectory import read_path_file

if TYPE_CHECKING:
    from mipnerf_cli.runs.trained import SceneCameras


class RenderSettings(Protocol):
    """What the path generators read of `settings.RenderSettings` (not imported: settings checks
    --path against :data:`PATH_GENERATORS`)."""

    path: str
    frames: int
    radius: Optional[float]
    elevation: float
    downscale: float
    resolution: Optional[tuple[int, int]]


def _spheric(settings: RenderSettings, cameras: SceneCameras) -> PathFrames:
    if cameras.llff is not None:
        if cameras.ndc:
            raise MipNerfError(f"--path spheric: {cameras.folder} is a forward-facing LLFF scene; use --path spiral")
        return _at_training_size(_llff_video_poses(settings, cameras), cameras)  # the reference's circle
    radius = settings.radius if settings.radius is not None else mean_camera_distance(cameras.cam2world)
    poses = spheric_poses(settings.frames, radius, settings.elevation)
    return _at_training_size(poses, cameras, radius=radius)


def _spiral(settings: RenderSettings, cameras: SceneCameras) -> PathFrames:
    if not cameras.ndc:
        what = "a spherified (360°) LLFF scene" if cameras.llff is not None else "not a forward-facing LLFF scene"
        raise MipNerfError(f"--path spiral: {cameras.folder} is {what}; use --path spheric")
    return _at_training_size(_llff_video_poses(settings, cameras), cameras)


def _llff_video_poses(settings: RenderSettings, cameras: SceneCameras) -> torch.Tensor:
    from mipnerf_cli.data.formats.llff import video_poses

    return video_poses(cameras.folder, cameras.llff["factor"], cameras.llff["spherify"], settings.frames)


def _interpolate(settings: RenderSettings, cameras: SceneCameras) -> PathFrames:
    return _at_training_size(interpolated_poses(cameras.cam2world, settings.frames), cameras)


def _at_training_size(poses: torch.Tensor, cameras: SceneCameras, radius: Optional[float] = None) -> PathFrames:
    focals = torch.full((poses.shape[0],), float(cameras.focal), dtype=torch.float64)
    return PathFrames(poses=poses, focals=focals, width=cameras.width, height=cameras.height, radius=radius)


# Path name -> pose generator. A new path is one entry here.
PATH_GENERATORS: dict[str, Callable[[RenderSettings, SceneCameras], PathFrames]] = {
    "auto": lambda settings, cameras: PATH_GENERATORS[auto_path(cameras)](settings, cameras),
    "spheric": _spheric,
    "spiral": _spiral,
    "interpolate": _interpolate,
}


def auto_path(cameras: SceneCameras) -> str:
    """The path `--path auto` takes: the reference's spiral for forward-facing scenes, else spheric."""
    return "spiral" if cameras.ndc else "spheric"


def is_path_file(path: str) -> bool:
    return path.lower().endswith(".json")


def path_name(path: str, cameras: SceneCameras) -> str:
    """The folder name under ``<run>/render/`` of a path: its name (``auto`` resolved), or a file's stem."""
    if is_path_file(path):
        return Path(path).stem
    return auto_path(cameras) if path == "auto" else path


def path_frames(
    settings: RenderSettings,
    cameras: SceneCameras,
    from_file: Optional[PathFrames] = None,
    downscale_flag: str = "--downscale",
) -> PathFrames:
    """The frames of ``settings.path`` at the size asked for (--downscale / --resolution).

    from_file: the path file's frames when the caller has read it already (read here otherwise).
    downscale_flag: the spelling of the divisor's flag that messages name (the older --scale)."""
    if from_file is not None:
        frames = from_file
    elif is_path_file(settings.path):
        frames = read_path_file(Path(settings.path))
    else:
        generator = PATH_GENERATORS.get(settings.path)
        if generator is None:
            raise MipNerfError(
                f"--path {settings.path}: unknown path; use one of {', '.join(PATH_GENERATORS)} or a FILE.json"
            )
        frames = generator(settings, cameras)
    return resized(frames, settings.downscale, settings.resolution, downscale_flag)
