"""Turning rendered maps into pictures and videos: colour maps, PNGs, mp4/gif writers.

Every writer goes through a temporary file in the target folder and `os.replace`, so a
file that exists is a complete one. Video encoding uses imageio-ffmpeg's bundled ffmpeg
(no system ffmpeg needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import cv2
import imageio.v2 as imageio_v2
import imageio.v3 as iio
import numpy as np
import torch

from mipnerf_cli.data.images import write_png  # noqa: F401  (one PNG writer, atomic; imported from here too)
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import write_atomically

VIDEO_FORMATS = ("mp4", "gif")


def _as_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().float().numpy()
    return np.asarray(array, dtype=np.float32)


def to_uint8(image) -> np.ndarray:
    """(H, W, C) or (H, W) floats in [0, 1] -> uint8 of the same shape (NaN -> 0, rounded)."""
    values = np.nan_to_num(_as_numpy(image), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_range(depth, acc, fallback: tuple[float, float], min_acc: float = 0.5) -> tuple[float, float]:
    """(lo, hi) of the depths of pixels that are mostly opaque (acc > min_acc).

    depth, acc: (H, W). Empty images (no such pixel, or one depth only) give `fallback`.
    """
    depth, acc = _as_numpy(depth), _as_numpy(acc)
    solid = depth[(acc > min_acc) & np.isfinite(depth)]
    if solid.size == 0 or float(solid.max()) - float(solid.min()) < 1e-6:
        return fallback
    return float(solid.min()), float(solid.max())


def colorize_depth(depth, acc, lo: float, hi: float) -> np.ndarray:
    """Depth (H, W) -> RGB uint8 (H, W, 3) with the turbo colour map, near red, far blue.

    Values are mapped linearly from [lo, hi]; transparent pixels fade to white by `acc`
    (H, W) as google/mipnerf's visualisation does, so the background does not get a colour.
    """
    depth, acc = _as_numpy(depth), np.clip(_as_numpy(acc), 0.0, 1.0)
    span = max(hi - lo, 1e-8)
    # 1 - normalised depth, so that near is the hot (red) end of turbo.
    closeness = 1.0 - np.clip((np.nan_to_num(depth, nan=hi) - lo) / span, 0.0, 1.0)
    bgr = cv2.applyColorMap(np.round(closeness * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = bgr[..., ::-1].astype(np.float32) / 255.0
    blended = rgb * acc[..., None] + (1.0 - acc[..., None])
    return to_uint8(blended)


def colorize_acc(acc) -> np.ndarray:
    """Accumulated opacity (H, W) in [0, 1] -> grey RGB uint8 (H, W, 3), opaque = white."""
    grey = to_uint8(acc)
    return np.repeat(grey[..., None], 3, axis=-1)


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row/column so that H and W are even (yuv420p in mp4 needs it)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h == 0 and pad_w == 0:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> None:
    """Encode uint8 (H, W, 3) frames as mp4 (H.264, yuv420p) or gif, chosen by the suffix.

    Odd mp4 sizes are padded by one pixel to even ones. Written atomically (`io.files`), so a
    failed encode leaves nothing behind; failures are raised as MipNerfError naming the file.
    """
    path = Path(path)
    kind = path.suffix.lstrip(".").lower()
    if kind not in VIDEO_FORMATS:
        raise MipNerfError(f"{path}: unknown video format '{kind}' (use one of {', '.join(VIDEO_FORMATS)})")

    def encode(tmp: Path) -> None:
        if kind == "mp4":
            writer = imageio_v2.get_writer(
                tmp,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                quality=8,
                pixelformat="yuv420p",
                macro_block_size=1,
                ffmpeg_log_level="error",
            )
            try:
                for frame in frames:
                    writer.append_data(pad_to_even(np.ascontiguousarray(frame)))
            finally:
                writer.close()
        else:
            stack = np.stack([np.ascontiguousarray(frame) for frame in frames])
            iio.imwrite(tmp, stack, extension=".gif", duration=1000.0 / fps, loop=0)

    write_atomically(path, encode, failures=(Exception,))  # ffmpeg missing or failing, disk full, ...
