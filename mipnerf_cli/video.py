"""`mipnerf render` as a library function: a camera path rendered to frames and videos.

The spheric path follows mipnerf_pl's render_video: cameras on a horizontal circle around
the object at the scene's radius (default: the mean distance of the training cameras from
the origin), 36 degrees above the horizon, looking at the origin, with the training focal
length divided by `scale`. Frames are written as PNGs first and encoded into rgb/depth/acc
videos afterwards, so a failing ffmpeg costs no rendering: the frames stay and the error
says where.

Under torchrun the frames are dealt round-robin to the ranks; rank 0 gathers each round's
renders in frame order and writes the frames and videos, the same files as one process.
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
from mipnerf_cli.data.llff import pose_rays
from mipnerf_cli.distributed import SINGLE, Context
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png, write_video
from mipnerf_cli.output_folder import StagedFolder
from mipnerf_cli.settings import RenderSettings
from mipnerf_cli.trained_model import load_trained_model, pick_device, scene_folder, training_downscale

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
    ndc: bool = False  # rays in NDC (forward-facing LLFF scenes)


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


def path_poses(settings: RenderSettings, trained, data: Optional[Path], radius: float) -> tuple[str, torch.Tensor, bool]:
    """The path's name (``auto`` resolved by the scene kind), its poses and whether its rays are NDC.

    LLFF scenes take the reference's paths: the 2-turn spiral (forward-facing) or the circle
    of a spherified capture; other scenes the spheric path around the object.
    """
    from mipnerf_cli.data import llff_options, scene_kind
    from mipnerf_cli.data.llff import video_poses

    folder = scene_folder(trained, data)
    if scene_kind(folder) == "llff":
        options = llff_options(trained.settings)
        name = "spheric" if options["spherify"] else "spiral"
        if settings.path not in ("auto", name):
            what = "a spherified (360°)" if options["spherify"] else "a forward-facing"
            raise MipNerfError(f"--path {settings.path}: {folder} is {what} LLFF scene; use --path {name}")
        return name, video_poses(folder, options["factor"], options["spherify"], settings.frames), not options["spherify"]
    if settings.path == "spiral":
        raise MipNerfError(f"--path spiral: {folder} is not a forward-facing LLFF scene; use --path spheric")
    return "spheric", spheric_poses(settings.frames, radius, settings.elevation), False


def _training_cameras(trained, data: Optional[Path]):
    from mipnerf_cli.data import llff_options, load_scene, scene_kind

    folder = scene_folder(trained, data)
    kind = scene_kind(folder)
    # A Blender run trained at 1/N renders at 1/N: "training resolution" is the one it saw.
    shrink = training_downscale(trained, kind)
    images = load_scene(folder, "train", multiscale=(kind == "multiscale"), white_bkgd=trained.white_bkgd, downscale=shrink,
                        **llff_options(trained.settings))
    full = [i for i, level in enumerate(images.levels) if level == 0]
    if not full:
        raise MipNerfError(f"{folder}: the train split has no full-resolution images to take the cameras from")
    first = full[0]
    return (images.cam2world[full], float(images.focal[first]), images.widths[first], images.heights[first],
            float(images.near), float(images.far))


def render_path(settings: RenderSettings, context: Context | None = None) -> Optional[RenderOutput]:
    """Render the camera path and write frames/videos to ``<run>/render/spheric`` (or `out`).

    context: this process's place among the torchrun processes (default: alone); ranks other
    than 0 render their frames and return None.
    """
    context = context or SINGLE
    device = pick_device(settings.device, settings.cpu_threads)
    if context.device is not None:
        device = context.device

    def prepare():
        # Rank 0 alone reads the checkpoint and the training cameras and hands them out.
        cpu = torch.device("cpu") if context.distributed else device
        trained = load_trained_model(settings.run, settings.ckpt, cpu)
        camera = path_camera(settings, *_training_cameras(trained, settings.data))
        name, poses, ndc = path_poses(settings, trained, settings.data, camera.radius)
        return trained, dataclasses.replace(camera, ndc=ndc), name, poses

    trained, camera, name, poses = context.broadcast(context.on_main(prepare))
    if context.distributed:
        trained = dataclasses.replace(trained, model=trained.model.to(device), device=device)
    target = settings.out if settings.out is not None else trained.run_dir / "render" / name
    staged = context.on_main(
        lambda: StagedFolder.open(target, _is_render_folder, "a render folder (rgb/depth/acc videos, frames/)")
    )
    frames_dir = staged.path / "frames" if staged is not None else None
    try:
        if frames_dir is not None:
            frames_dir.mkdir()
        rays_per_second = _render_frames(settings, trained, camera, poses, frames_dir, device, context)
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is None:
        return None
    target, staging = staged.target, staged.path

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


def _render_frames(settings, trained, camera: PathCamera, poses: torch.Tensor, frames_dir: Optional[Path], device,
                   context: Context = SINGLE) -> float:
    """Render every pose; rank 0 writes the frames to `frames_dir`. Returns rays/s, all ranks together."""
    depth_limits = None
    rays_done = 0
    rank_seconds = [0.0] * context.world_size
    with ProgressBar("render", total=len(poses), enabled=settings.progress and context.is_main, line_interval_s=5.0) as bar:
        for first in range(0, len(poses), context.world_size):
            index = first + context.rank
            mine = None
            if index < len(poses):
                if camera.ndc:
                    rays = pose_rays(poses[index], camera.width, camera.height, camera.focal, camera.near, camera.far, True)
                else:
                    rays = camera_rays(poses[index], camera.width, camera.height, camera.focal, camera.near, camera.far)
                start = time.perf_counter()
                out = render_image(trained.model, rays, camera.height, camera.width, settings.chunk,
                                   trained.white_bkgd, device=device)
                mine = (out, time.perf_counter() - start)
            gathered = context.gather(mine)
            for rank, item in enumerate(gathered or []):
                if item is not None:
                    out, seconds = item
                    rank_seconds[rank] += seconds
                    depth_limits = _write_frame(frames_dir, first + rank, out, camera, depth_limits)
                    rays_done += camera.width * camera.height
                    seconds = max(rank_seconds)
                    bar.update(1, rays_per_s=rays_done / seconds if seconds > 0 else 0.0)
    seconds = max(rank_seconds)
    return rays_done / seconds if seconds > 0 else 0.0


def _write_frame(frames_dir: Path, index: int, out: dict[str, torch.Tensor], camera: PathCamera, depth_limits):
    """Write frame `index`'s rgb/depth/acc PNGs; returns the video's depth limits (set by frame 0)."""
    if depth_limits is None:
        # One depth range for the whole video (the first frame's, with a margin), so
        # colours do not flicker from frame to frame.
        lo, hi = depth_range(out["distance"], out["acc"], fallback=(camera.near, camera.far))
        margin = 0.1 * (hi - lo)
        depth_limits = (max(camera.near, lo - margin), min(camera.far, hi + margin))
    write_png(frames_dir / f"rgb_{index:04d}.png", to_uint8(out["rgb"]))
    write_png(frames_dir / f"depth_{index:04d}.png", colorize_depth(out["distance"], out["acc"], *depth_limits))
    write_png(frames_dir / f"acc_{index:04d}.png", colorize_acc(out["acc"]))
    return depth_limits


def _is_render_folder(folder: Path) -> bool:
    ours = {f"{name}.{ext}" for name in MAPS for ext in ("mp4", "gif")} | {"frames"}
    return all(entry.name in ours for entry in folder.iterdir())


def _read_frames(frames_dir: Path, name: str, count: int):
    for index in range(count):
        yield iio.imread(frames_dir / f"{name}_{index:04d}.png")
