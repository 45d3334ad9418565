"""What `mipnerf convert` was given: a Blender scene, a folder of photos or a video file.

Photos are checked one by one (a corrupt file is listed and left out); a video is sampled
into frames, the sharpest frame of each window kept (variance of the Laplacian), so that
motion-blurred frames do not reach the feature matcher.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from mipnerf_cli.data.formats.transforms import transforms_path
from mipnerf_cli.data.images import write_png
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.reporting import Reporter

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp")
MIN_IMAGES = 3  # SfM needs at least an initial pair and one more view
DEFAULT_FRAMES = 100  # frames taken from a video when neither --fps nor --frames is given


@dataclasses.dataclass(frozen=True)
class Photo:
    """One input image: where pycolmap reads it (``path``) and the name the user knows it by."""

    path: Path
    original_name: str
    height: int
    width: int


@dataclasses.dataclass(frozen=True)
class Photos:
    """The usable images of a capture, in name (= frame) order, and what was left out."""

    kind: str  # "photos" | "video"
    photos: list[Photo]
    skipped: list[tuple[str, str]]  # (name, reason)


def source_kind(source: Path) -> str:
    """ "blender", "photos" or "video" for ``source``; MipNerfError when it is none of them."""
    source = Path(source)
    if not source.exists():
        raise MipNerfError(
            f"{source}: folder not found; pass a Blender scene folder (with transforms_train.json) or a folder of "
            "scenes, a folder of photos or a video file"
        )
    if source.is_file():
        if source.suffix.lower() in VIDEO_SUFFIXES:
            return "video"
        raise MipNerfError(
            f"{source}: not a video file ({', '.join(VIDEO_SUFFIXES)}); pass a video, a folder of photos or a Blender scene"
        )
    if transforms_path(source, "train").is_file() or any(
        p.is_dir() and transforms_path(p, "train").is_file() for p in source.iterdir()
    ):
        return "blender"
    return "photos"


def photo_files(folder: Path) -> list[Path]:
    """The .jpg / .jpeg / .png files (any case) directly in ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES), key=str)


def _check_count(photos: list[Photo], skipped: list[tuple[str, str]], where: Path) -> None:
    if len(photos) < MIN_IMAGES:
        left_out = f" ({len(skipped)} could not be read: {', '.join(name for name, _ in skipped)})" if skipped else ""
        raise MipNerfError(
            f"{where}: {len(photos)} usable image(s){left_out}; a capture needs at least {MIN_IMAGES} "
            "overlapping photos (20-100 all around the subject work best)"
        )


def require_photo_files(folder: Path) -> list[Path]:
    """:func:`photo_files`, or MipNerfError when there is none."""
    files = photo_files(folder)
    if not files:
        raise MipNerfError(
            f"{folder}: no Blender scene found (expected transforms_train.json in it or in its sub-folders) and "
            "no photos (.jpg, .jpeg or .png) in it; pass a Blender scene or a folder of photos"
        )
    return files


def read_photos(folder: Path, reporter: Reporter) -> Photos:
    """Check every photo of ``folder`` by decoding it; the corrupt ones are listed and skipped.

    MipNerfError when the folder has no photos, fewer than MIN_IMAGES usable ones, or photos
    of different sizes (one shared camera needs one size)."""
    from PIL import Image

    files = require_photo_files(folder)
    photos, skipped = [], []
    with reporter.progress("read photos", total=len(files), unit="images") as bar:
        for file in files:
            try:
                with Image.open(file) as image:
                    image.load()
                    photos.append(Photo(file, file.name, image.height, image.width))
            except Exception as error:  # PIL raises many kinds for a corrupt file
                reason = str(error).strip() or type(error).__name__
                skipped.append((file.name, reason))
                bar.log(f"skipped {file.name}: cannot decode it ({reason})")
            bar.update(1)
    _check_count(photos, skipped, folder)
    sizes = {(p.width, p.height) for p in photos}
    if len(sizes) > 1:
        counts = {size: sum((p.width, p.height) == size for p in photos) for size in sizes}
        listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(counts.items(), key=lambda item: -item[1]))
        raise MipNerfError(f"{folder}: the photos have different sizes ({listed}); resize them to one size")
    return Photos("photos", photos, skipped)


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurred frames."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def frame_windows(num_frames: int, video_fps: float, fps: float | None, frames: int | None) -> np.ndarray:
    """(num_frames,) window index of every frame: one window per kept frame.

    ``--fps F``: windows of video_fps / F frames; ``--frames N``: N equal windows; neither:
    DEFAULT_FRAMES equal windows (fewer when the video is shorter)."""
    if fps is not None:
        if not video_fps > 0:
            raise MipNerfError("the video has no frame rate; use --frames N instead of --fps")
        count = max(1, math.ceil(num_frames * fps / video_fps))
    else:
        count = frames if frames is not None else DEFAULT_FRAMES
    count = min(count, num_frames)
    return np.minimum((np.arange(num_frames) * count) // num_frames, count - 1)


def _open_video(video: Path):
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(video, "ffmpeg")
        meta = reader.get_meta_data()
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MipNerfError(
            f"{video}: cannot read the video ({reason}); is it a video file ffmpeg can decode?"
        ) from None
    return reader, meta


def count_video_frames(video: Path) -> int:
    import imageio_ffmpeg

    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except Exception as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise MipNerfError(
            f"{video}: cannot read the video ({reason}); is it a video file ffmpeg can decode?"
        ) from None
    if frames <= 0:
        raise MipNerfError(f"{video}: the video has no frames")
    return int(frames)


def read_video(
    video: Path, frame_dir: Path, reporter: Reporter, fps: float | None = None, frames: int | None = None
) -> Photos:
    """Sample ``video`` into PNG frames ``frame_<index>.png`` in ``frame_dir``: the sharpest
    frame of each window (see :func:`frame_windows`). MipNerfError for an unreadable video
    or fewer than MIN_IMAGES frames."""
    if fps is not None and not fps > 0:
        raise MipNerfError(f"--fps must be positive, got {fps}")
    if frames is not None and frames < MIN_IMAGES:
        raise MipNerfError(f"--frames must be at least {MIN_IMAGES}, got {frames}")
    num_frames = count_video_frames(video)
    reader, meta = _open_video(video)
    windows = frame_windows(num_frames, float(meta.get("fps") or 0.0), fps, frames)
    best: dict[int, tuple[float, int, np.ndarray]] = {}
    read = 0
    try:
        with reporter.progress("read video", total=num_frames, unit="frames") as bar:
            for index, rgb in enumerate(reader):
                if index >= num_frames:
                    break
                window = int(windows[index])
                score = sharpness(rgb)
                if window not in best or score > best[window][0]:
                    best[window] = (score, index, np.asarray(rgb))
                read += 1
                bar.update(1)
    except Exception as error:
        if read == 0:
            raise MipNerfError(
                f"{video}: cannot decode the video ({str(error).strip() or type(error).__name__})"
            ) from None
    finally:
        reader.close()
    photos = []
    for window in sorted(best):
        _, index, rgb = best[window]
        name = f"frame_{index:06d}.png"
        write_png(frame_dir / name, rgb)
        photos.append(Photo(frame_dir / name, name, rgb.shape[0], rgb.shape[1]))
    _check_count(photos, [], video)
    return Photos("video", photos, [])


def read_source(
    source: Path, frame_dir: Path, reporter: Reporter, fps: float | None = None, frames: int | None = None
) -> Photos:
    """The photos of ``source`` (a folder of photos or a video, see :func:`source_kind`)."""
    kind = source_kind(source)
    if kind == "video":
        return read_video(source, frame_dir, reporter, fps, frames)
    if fps is not None or frames is not None:
        raise MipNerfError("--fps and --frames apply to a video source only; drop them for a folder of photos")
    return read_photos(source, reporter)
