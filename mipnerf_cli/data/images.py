"""Reading and writing 8-bit PNGs as RGBA arrays, with one-line errors that name the file.

Every image is handed on as ``(H, W, 4)`` uint8 RGBA: an RGB, grey or palette PNG gets
alpha 255 (fully opaque), so a scene whose images have no alpha channel still loads and
converts. 16-bit PNGs are refused rather than silently rescaled.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.files import write_bytes_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PIL modes whose conversion to RGBA is lossless for 8-bit data.
_CONVERTIBLE_MODES = {"RGB", "L", "LA", "P", "PA", "1"}


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) from a PNG's header, without decoding the pixels.

    Lets a converter or loader check sizes and allocate memory for a whole split before
    the slow decoding starts. Raises MipNerfError for a missing file or a non-PNG header.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(33)
    except FileNotFoundError:
        raise MipNerfError(f"{path}: image file not found") from None
    except OSError as error:
        raise MipNerfError(f"{path}: cannot read the image ({error.strerror or error})") from None
    if len(head) < 33 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise MipNerfError(f"{path}: not a PNG file (bad header); re-export it as an 8-bit PNG")
    width, height, bit_depth = struct.unpack(">IIB", head[16:25])
    if bit_depth > 8:
        raise MipNerfError(f"{path}: {bit_depth}-bit PNGs are not supported; save it as an 8-bit PNG")
    return height, width


def read_rgba(path: Path) -> np.ndarray:
    """The image at ``path`` as ``(H, W, 4)`` uint8 RGBA; images without alpha get alpha 255.

    PIL decodes (it reports truncated files as errors, where libpng via OpenCV prints to
    stderr and returns nothing). Raises MipNerfError naming the file for a missing,
    truncated, corrupt or 16-bit image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "RGBA":
                pixels = np.asarray(image)
            elif image.mode in _CONVERTIBLE_MODES:
                pixels = np.asarray(image.convert("RGBA"))
            else:
                raise MipNerfError(
                    f"{path}: unsupported image mode {image.mode} (16-bit or float?); save it as an 8-bit RGBA PNG"
                )
    except FileNotFoundError:
        raise MipNerfError(f"{path}: image file not found") from None
    except MipNerfError:
        raise
    except (OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError) as error:
        reason = str(error).strip().rstrip(".") or type(error).__name__
        raise MipNerfError(
            f"{path}: cannot decode the image ({reason}); the file is truncated or corrupt, re-export or replace it"
        ) from None
    return pixels


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write uint8 ``(H, W, 4)``, ``(H, W, 3)`` or ``(H, W)`` pixels to ``path`` as a PNG
    (lossless), atomically; MipNerfError naming the file when it cannot be written.

    OpenCV encodes into memory (about four times faster than PIL, and it releases the GIL,
    so a thread pool scales over cores); the bytes are then written in one go to a
    temporary file renamed into place, so Ctrl+C never leaves a half-written PNG.
    """
    path = Path(path)
    pixels = np.ascontiguousarray(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    elif pixels.ndim == 3 and pixels.shape[-1] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise MipNerfError(f"could not encode {path} as PNG (shape {image.shape}, dtype {image.dtype})")
    write_bytes_atomically(path, encoded.tobytes())


def area_downscale(rgba: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(H/factor, W/factor, C)`` uint8: the mean of each factor x factor
    block (float32), rounded to the nearest integer. Channels are averaged independently,
    alpha included, as the reference's ``cv2.INTER_AREA`` half-resolution option does.
    """
    if factor == 1:
        return rgba
    height, width, channels = rgba.shape
    blocks = rgba.reshape(height // factor, factor, width // factor, factor, channels)
    return np.rint(blocks.astype(np.float32).mean(axis=(1, 3))).astype(np.uint8)


def load_rgba_into(
    paths: list[Path],
    sizes: list[tuple[int, int]],
    downscale: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode ``paths`` into one ``(sum(H*W), 4)`` uint8 array, image after image, row-major.

    sizes: the (H, W) of each image after ``downscale`` (known beforehand from the PNG
    headers or the metadata), so the buffer is allocated once and each image is decoded
    straight into its slice by a thread pool; no second full-size copy is ever made.
    A decoded image of another size raises MipNerfError naming it.
    progress(done, total) is called from the calling thread after each image.
    """
    counts = [h * w for h, w in sizes]
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    buffer = np.empty((int(offsets[-1]), 4), dtype=np.uint8)

    def decode(i: int) -> None:
        pixels = read_rgba(paths[i])
        expected = (sizes[i][0] * downscale, sizes[i][1] * downscale)
        if pixels.shape[:2] != expected:
            raise MipNerfError(
                f"{paths[i]}: image is {pixels.shape[0]}x{pixels.shape[1]} (HxW), expected {expected[0]}x{expected[1]}"
            )
        buffer[offsets[i] : offsets[i + 1]] = area_downscale(pixels, downscale).reshape(-1, 4)

    run_in_threads(decode, len(paths), workers, progress)
    return buffer


def default_workers() -> int:
    """Threads for image work: every core, at most 8 (PNG coding releases the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def run_in_threads(
    task: Callable[[int], object],
    count: int,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """``[task(0), ..., task(count - 1)]`` on a thread pool, results in order.

    The first exception cancels the tasks not yet started, waits for the running ones (so
    none writes after the caller has cleaned up) and is re-raised.
    """
    workers = workers or default_workers()
    results: list = [None] * count
    if workers == 1:
        for i in range(count):
            results[i] = task(i)
            if progress is not None:
                progress(i + 1, count)
        return results
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {executor.submit(task, i): i for i in range(count)}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(done, count)
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return results
