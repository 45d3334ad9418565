"""`mipnerf render` as a library function: a camera path rendered to frames and videos.

The path's cameras come from `render_paths` (spheric, interpolate, or a camera_path.json);
the frames' cameras are written to cameras.json next to the videos, which `--path` takes back.
The spheric path follows mipnerf_pl's render_video: cameras on a horizontal circle around
the object at the scene's radius (default: the mean distance of the training cameras from
the origin), 36 degrees above the horizon, looking at the origin, with the training focal
length divided by `downscale`. Frames are written as PNGs first and encoded into rgb/depth/acc
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

from mipnerf_cli.core.render import RenderStopped, render_image
from mipnerf_cli.distributed import SINGLE, Context, round_robin
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png, write_video
from mipnerf_cli.io.staging import StagedFolder
from mipnerf_cli.rendering.frames import PathFrames, write_camera_path
from mipnerf_cli.rendering.paths import is_path_file, path_frames, path_name
from mipnerf_cli.rendering.trajectory import read_path_file
from mipnerf_cli.reporting import QuietProgress, ReportArg, as_reporter
from mipnerf_cli.runs.trained import SceneCameras, load_trained_model
from mipnerf_cli.runtime import Runtime, from_settings
from mipnerf_cli.settings import RenderSettings
from mipnerf_cli.stopping import StopSignals

MAPS = ("rgb", "depth", "acc")
CAMERAS_FILE = "cameras.json"  # every frame's camera; `--path` takes it back (render_paths)


@dataclasses.dataclass
class RenderOutput:
    folder: Path
    files: list[Path]
    width: int
    height: int
    focal: float
    radius: Optional[float]  # spheric only
    num_frames: int
    rays_per_second: float


def render_path(
    settings: RenderSettings,
    context: Context | None = None,
    report: ReportArg = None,
    downscale_flag: str = "--downscale",
) -> Optional[RenderOutput]:
    """Render the camera path and write frames/videos and cameras.json to ``<run>/render/<path>`` (or `out`).

    context: this process's place among the torchrun processes (default: alone); ranks other
    than 0 render their frames and return None.
    report: the `reporting.Reporter` that shows the progress (default: silent).
    downscale_flag: the spelling of `settings.downscale`'s flag that messages name (the older --scale).
    Ctrl+C or SIGTERM while rendering stops at the next chunk and raises KeyboardInterrupt,
    leaving nothing behind (`stopping.StopSignals`).
    """
    context = context or SINGLE
    runtime = from_settings(settings, context.device)
    device = runtime.device

    def prepare():
        # Rank 0 alone reads the checkpoint and the scene's cameras and hands them out.
        cpu = torch.device("cpu") if context.distributed else device
        # A path file is read once, first: a bad one is refused before anything is loaded.
        from_file = read_path_file(Path(settings.path)) if is_path_file(settings.path) else None
        trained = load_trained_model(settings.run, settings.ckpt, cpu)
        # The cameras decide the rays: NDC for a forward-facing capture's model, whatever the path.
        cameras = trained.scene(settings.data).cameras(settings.split).full_resolution()
        frames = path_frames(settings, cameras, from_file, downscale_flag)
        return trained, cameras, frames, path_name(settings.path, cameras)

    trained, cameras, frames, name = context.broadcast(context.on_main(prepare))
    if context.distributed:
        trained = dataclasses.replace(trained, model=trained.model.to(device), device=device)
    fps = frames.fps if frames.fps is not None else settings.fps
    target = settings.out if settings.out is not None else trained.run_dir / "render" / name
    staged = context.on_main(
        lambda: StagedFolder.open(
            target, _is_render_folder, "a render folder (rgb/depth/acc videos, frames/, cameras.json)"
        )
    )
    frames_dir = staged.path / "frames" if staged is not None else None
    try:
        if frames_dir is not None:
            frames_dir.mkdir()
            write_camera_path(staged.path / CAMERAS_FILE, frames, fps)
        with StopSignals() as stop:
            rays_per_second = _render_frames(
                settings, trained, cameras, frames, frames_dir, runtime, context, as_reporter(report), stop
            )
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is None:
        return None
    target, staging = staged.target, staged.path

    files = [target / CAMERAS_FILE]
    if settings.format != "png":
        try:
            for name in MAPS:
                video = staging / f"{name}.{settings.format}"
                write_video(video, _read_frames(frames_dir, name, len(frames)), fps)
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
        folder=target,
        files=files,
        width=frames.width,
        height=frames.height,
        focal=float(frames.focals[0]),
        radius=frames.radius,
        num_frames=len(frames),
        rays_per_second=rays_per_second,
    )


def _render_frames(
    settings,
    trained,
    cameras: SceneCameras,
    frames: PathFrames,
    frames_dir: Optional[Path],
    runtime: Runtime,
    context: Context,
    reporter,
    stop: StopSignals,
) -> float:
    """Render every pose; rank 0 writes the frames to `frames_dir`. Returns rays/s, all ranks together.

    A stop request (`stop`) ends the render at the next chunk with KeyboardInterrupt."""
    depth_limits = None
    rays_done = 0
    rank_seconds = [0.0] * context.world_size
    show = settings.progress and context.is_main
    bar = reporter.progress("render", total=len(frames), line_interval_s=5.0) if show else QuietProgress()

    def work(index: int):
        stop.check()
        rays = cameras.rays(frames.poses[index], frames.width, frames.height, float(frames.focals[index]))
        start = time.perf_counter()
        try:
            out = render_image(
                trained.model,
                rays,
                frames.height,
                frames.width,
                settings.chunk,
                trained.white_bkgd,
                **runtime.render_options(trained.model),
                should_stop=stop.requested,
            )
        except RenderStopped:
            raise KeyboardInterrupt("stop requested during the render") from None
        return out, time.perf_counter() - start

    def take(index: int, rank: int, item) -> None:
        nonlocal depth_limits, rays_done
        out, seconds = item
        rank_seconds[rank] += seconds
        depth_limits = _write_frame(frames_dir, index, out, cameras, depth_limits)
        rays_done += frames.width * frames.height
        seconds = max(rank_seconds)
        bar.update(1, rays_per_s=rays_done / seconds if seconds > 0 else 0.0)

    with bar:
        round_robin(context, len(frames), work, take)
    stop.check()
    seconds = max(rank_seconds)
    return rays_done / seconds if seconds > 0 else 0.0


def _write_frame(frames_dir: Path, index: int, out: dict[str, torch.Tensor], camera: SceneCameras, depth_limits):
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
    ours = {f"{name}.{ext}" for name in MAPS for ext in ("mp4", "gif")} | {"frames", CAMERAS_FILE}
    return all(entry.name in ours for entry in folder.iterdir())


def _read_frames(frames_dir: Path, name: str, count: int):
    for index in range(count):
        yield iio.imread(frames_dir / f"{name}_{index:04d}.png")
