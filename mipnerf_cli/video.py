"""`mipnerf render` as a library function: a camera path rendered to frames and videos.

The spheric path follows mipnerf_pl's render_video: cameras on a horizontal circle around
the object at the scene's radius (default: the mean distance of the training cameras from
the origin), 36 degrees above the horizon, looking at the origin, with the training focal
length divided by `scale`. Frames are written as PNGs first and encoded into rgb/depth/acc
videos afterwards, so a failing ffmpeg costs no rendering: the frames stay and the error
says where.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Optional

import imageio.v3 as iio
import torch

from mipnerf_cli.console import ProgressBar
from mipnerf_cli.core.camera_paths import camera_rays, mean_camera_distance, spheric_poses
from mipnerf_cli.core.render import render_image
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png, write_video
from mipnerf_cli.output_folder import StagedFolder
from mipnerf_cli.settings import RenderSettings
from mipnerf_cli.trained_model import load_trained_model, pick_device, scene_folder

MAPS = ("rgb", "depth", "acc")


@dataclasses.dataclass
class RenderOutput:
    folder: Path
    files: list[Path]
    width: int
    height: int
    focal: float
    radius: float
    num_frames: int
    rays_per_second: float


@dataclasses.dataclass
class PathCamera:
    """The intrinsics and distances every frame of the path shares."""

    width: int
    height: int
    focal: float
    radius: float
    near: float
    far: float


def path_camera(settings: RenderSettings, train_cam2world: torch.Tensor, train_focal: float,
                train_width: int, train_height: int, near: float, far: float) -> PathCamera:
    """Image size, focal and radius of the path from the full-resolution training cameras."""
    if settings.resolution is not None:
        width, height = settings.resolution
    else:
        if round(train_width / settings.scale) < 1 or round(train_height / settings.scale) < 1:
            raise MipNerfError(
                f"--scale {settings.scale:g}: the training images are {train_width}x{train_height}, so the frames "
                f"would be smaller than one pixel; use --scale {min(train_width, train_height)} or less, or --resolution WxH"
            )
        width = round(train_width / settings.scale)
        height = round(train_height / settings.scale)
    # The field of view stays the training one whatever the size: focal scales with the width.
    focal = train_focal * width / train_width
    radius = settings.radius if settings.radius is not None else mean_camera_distance(train_cam2world)
    return PathCamera(width=width, height=height, focal=focal, radius=radius, near=near, far=far)


def _training_cameras(trained, data: Optional[Path]):
    from mipnerf_cli.data import load_scene, scene_kind

    folder = scene_folder(trained, data)
    kind = scene_kind(folder)
    images = load_scene(folder, "train", multiscale=(kind == "multiscale"), white_bkgd=trained.white_bkgd)
    full = [i for i, level in enumerate(images.levels) if level == 0]
    if not full:
        raise MipNerfError(f"{folder}: the train split has no full-resolution images to take the cameras from")
    first = full[0]
    return (images.cam2world[full], float(images.focal[first]), images.widths[first], images.heights[first],
            float(images.near), float(images.far))


def render_path(settings: RenderSettings) -> RenderOutput:
    """Render the camera path and write frames/videos to ``<run>/render/spheric`` (or `out`)."""
    device = pick_device(settings.device, settings.cpu_threads)
    trained = load_trained_model(settings.run, settings.ckpt, device)
    camera = path_camera(settings, *_training_cameras(trained, settings.data))
    poses = spheric_poses(settings.frames, camera.radius, settings.elevation)
    target = settings.out if settings.out is not None else trained.run_dir / "render" / settings.path
    staged = StagedFolder.open(target, _is_render_folder, "a render folder (rgb/depth/acc videos, frames/)")
    target, staging = staged.target, staged.path
    frames_dir = staging / "frames"
    try:
        frames_dir.mkdir()
        rays_per_second = _render_frames(settings, trained, camera, poses, frames_dir, device)
    except BaseException:
        staged.discard()
        raise

    files = []
    if settings.format != "png":
        try:
            for name in MAPS:
                video = staging / f"{name}.{settings.format}"
                write_video(video, _read_frames(frames_dir, name, settings.frames), settings.fps)
                files.append(target / video.name)
        except MipNerfError as error:
            staged.commit()
            raise MipNerfError(f"{error}; the rendered frames are kept in {target / 'frames'}") from None
        except BaseException:
            staged.discard()
            raise
        if not settings.keep_frames:
            shutil.rmtree(frames_dir)
    if settings.format == "png" or settings.keep_frames:
        files.append(target / "frames")
    staged.commit()
    return RenderOutput(
        folder=target, files=files, width=camera.width, height=camera.height, focal=camera.focal,
        radius=camera.radius, num_frames=settings.frames, rays_per_second=rays_per_second,
    )


def _render_frames(settings, trained, camera: PathCamera, poses: torch.Tensor, frames_dir: Path, device) -> float:
    depth_limits = None
    rays_done, seconds = 0, 0.0
    with ProgressBar("render", total=len(poses), enabled=settings.progress, line_interval_s=5.0) as bar:
        for index, pose in enumerate(poses):
            rays = camera_rays(pose, camera.width, camera.height, camera.focal, camera.near, camera.far)
            start = time.perf_counter()
            out = render_image(trained.model, rays, camera.height, camera.width, settings.chunk,
                               trained.white_bkgd, device=device)
            seconds += time.perf_counter() - start
            rays_done += len(rays)
            if depth_limits is None:
                # One depth range for the whole video (the first frame's, with a margin), so
                # colours do not flicker from frame to frame.
                lo, hi = depth_range(out["distance"], out["acc"], fallback=(camera.near, camera.far))
                margin = 0.1 * (hi - lo)
                depth_limits = (max(camera.near, lo - margin), min(camera.far, hi + margin))
            write_png(frames_dir / f"rgb_{index:04d}.png", to_uint8(out["rgb"]))
            write_png(frames_dir / f"depth_{index:04d}.png", colorize_depth(out["distance"], out["acc"], *depth_limits))
            write_png(frames_dir / f"acc_{index:04d}.png", colorize_acc(out["acc"]))
            bar.update(1, rays_per_s=rays_done / seconds if seconds > 0 else 0.0)
    return rays_done / seconds if seconds > 0 else 0.0


def _is_render_folder(folder: Path) -> bool:
    ours = {f"{name}.{ext}" for name in MAPS for ext in ("mp4", "gif")} | {"frames"}
    return all(entry.name in ours for entry in folder.iterdir())


def _read_frames(frames_dir: Path, name: str, count: int):
    for index in range(count):
        yield iio.imread(frames_dir / f"{name}_{index:04d}.png")
