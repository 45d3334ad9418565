"""Pinhole camera conventions shared by the converter and the loaders (Blender / NeRF style);
the rule itself is `core.rays` (pix2cam, pinhole_radius, pinhole_rays).

Camera space: x right, y up, the camera looks down -z. Pixel (col, row) has its centre at
(col + 0.5, row + 0.5) and its camera-space direction is
``pix2cam @ (col + 0.5, row + 0.5, 1)`` with
``pix2cam = [[1/f, 0, -cx/f], [0, -1/f, cy/f], [0, 0, -1]]``, cx = W/2, cy = H/2, which
is ``((col - W/2 + 0.5)/f, -(row - H/2 + 0.5)/f, -1)``. World directions are that vector
rotated by the 3x3 part of cam2world; they are not normalized.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from mipnerf_cli.core.rays import pix2cam, pix2cam_general


def focal_from_camera_angle(width: int, camera_angle_x: float) -> np.float64:
    """Focal length in pixels of an image ``width`` pixels wide with horizontal field of view
    ``camera_angle_x`` radians: ``0.5 * W / tan(0.5 * camera_angle_x)``.

    Uses ``np.tan`` (not ``math.tan``) so the value is bit-identical to the reference
    converter's, which writes it into metadata.json.
    """
    return 0.5 * width / np.tan(0.5 * float(camera_angle_x))


def pix2cam_matrices(focals, widths, heights) -> np.ndarray:
    """Inverse intrinsics, ``(I, 3, 3)`` float64, from per-image ``focals``, ``widths``, ``heights``
    (sequences of length I).

    `core.rays.pix2cam` (the one pinhole rule), whose float64 operations are the reference
    converter's, so the metadata.json values match it digit for digit.
    """
    return pix2cam(
        torch.as_tensor(np.asarray(focals, dtype=np.float64)),
        torch.as_tensor(np.asarray(widths, dtype=np.float64)),
        torch.as_tensor(np.asarray(heights, dtype=np.float64)),
    ).numpy()


def pix2cam_from_intrinsics(intrinsics: np.ndarray) -> np.ndarray:
    """Inverse intrinsics ``(I, 3, 3)`` float64 of general pinhole cameras ``intrinsics`` (I, 4):
    fx, fy, cx, cy in pixels (`core.rays.pix2cam_general`; cx = W/2, cy = H/2 and fx = fy = focal
    give ``pix2cam_matrices``)."""
    fx, fy, cx, cy = np.moveaxis(np.asarray(intrinsics, dtype=np.float64), -1, 0)
    return pix2cam_general(*(torch.as_tensor(v) for v in (fx, fy, cx, cy))).numpy()


@dataclasses.dataclass(eq=False)
class SplitCameras:
    """The cameras of one split of a scene, read from its transforms / metadata / poses files
    and the image headers, without decoding a pixel (the loaders add the pixels: an ImageSet).

    names:      I image names;  files: I image files (in the split's order).
    heights, widths, levels: I ints (level 0 = full resolution).
    cam2world:  (I, 3, 4) float64;  focal: (I,) float64 pixels;  pix2cam: (I, 3, 3) float64.
    lossmult:   (I,) float32;  near, far: the rays' bounds;  multiscale: a converted scene.
    """

    names: list[str]
    files: list[Path]
    heights: list[int]
    widths: list[int]
    levels: list[int]
    cam2world: torch.Tensor
    focal: torch.Tensor
    pix2cam: torch.Tensor
    lossmult: torch.Tensor
    near: float
    far: float
    multiscale: bool = False

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of every image."""
        return list(zip(self.heights, self.widths))

    def image_fields(self) -> dict:
        """The ImageSet fields these cameras fill (all but the pixels and the background)."""
        return {
            "names": self.names,
            "heights": self.heights,
            "widths": self.widths,
            "levels": self.levels,
            "cam2world": self.cam2world,
            "focal": self.focal,
            "pix2cam": self.pix2cam,
            "lossmult": self.lossmult,
            "near": self.near,
            "far": self.far,
            "multiscale": self.multiscale,
        }


def opengl_from_opencv(poses) -> np.ndarray:
    """(..., 3, 4) float64 OpenGL camera-to-world matrices (x right, y up, looking down -z) from
    OpenCV ones ``poses`` (..., 3, 4) or (..., 4, 4) (x right, y down, looking down +z): the y
    and z axes negated. The flip is its own inverse (OpenGL -> OpenCV is the same call)."""
    cam2world = np.array(poses, dtype=np.float64)[..., :3, :4]
    cam2world[..., :, 1:3] *= -1
    return cam2world
