"""`mipnerf convert`'s options for photos and videos (SfM and the capture)."""

from __future__ import annotations

from typing import Optional

from pydantic.dataclasses import dataclass as pydantic_dataclass

# ----------------------------------------------------------------------------- convert (photos, video)

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")
DEFAULT_CAMERA_MODEL = "SIMPLE_RADIAL"


@pydantic_dataclass(frozen=True)
class SfmOptions:
    """How to run SfM: camera model, one camera per image, threads, matching (None: by source).
    Checked by ``convert.capture.sfm.check_options`` (messages naming the flags)."""

    camera_model: str = DEFAULT_CAMERA_MODEL
    per_image_cameras: bool = False
    threads: Optional[int] = None
    sequential: Optional[bool] = None  # None: sequential for a video, exhaustive for photos


@pydantic_dataclass(frozen=True)
class CaptureOptions:
    """What `mipnerf convert` was asked for a photo or video source (checked, with messages
    naming the flags, by ``convert.capture.pipeline.check_request``)."""

    fps: Optional[float] = None
    frames: Optional[int] = None
    sfm: SfmOptions = SfmOptions()
    scene_kind: Optional[str] = None  # None: detected from the camera layout
    multiscale: bool = False
    llffhold: int = 8
    overwrite: bool = False
    workers: Optional[int] = None
