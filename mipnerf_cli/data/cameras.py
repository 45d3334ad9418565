"""Pinhole camera conventions shared by the converter and the loaders (Blender / NeRF style).

Camera space: x right, y up, the camera looks down -z. Pixel (col, row) has its centre at
(col + 0.5, row + 0.5) and its camera-space direction is
``pix2cam @ (col + 0.5, row + 0.5, 1)`` with
``pix2cam = [[1/f, 0, -cx/f], [0, -1/f, cy/f], [0, 0, -1]]``, cx = W/2, cy = H/2, which
is ``((col - W/2 + 0.5)/f, -(row - H/2 + 0.5)/f, -1)``. World directions are that vector
rotated by the 3x3 part of cam2world; they are not normalized.
"""

from __future__ import annotations

import numpy as np


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

    Evaluated with the same float64 operations as the reference converter so the
    metadata.json values match it digit for digit.
    """
    fx = np.array(focals, dtype=np.float64)
    fy = np.array(focals, dtype=np.float64)
    cx = np.array(widths) * 0.5
    cy = np.array(heights) * 0.5
    zeros = np.zeros_like(cx)
    ones = np.ones_like(cx)
    k_inv = np.array(
        [
            [ones / fx, zeros, -cx / fx],
            [zeros, -ones / fy, cy / fy],
            [zeros, zeros, -ones],
        ]
    )
    return np.moveaxis(k_inv, -1, 0)


def pix2cam_from_intrinsics(intrinsics: np.ndarray) -> np.ndarray:
    """Inverse intrinsics ``(I, 3, 3)`` float64 of general pinhole cameras ``intrinsics`` (I, 4):
    fx, fy, cx, cy in pixels (pixel centres at +0.5, the convention above; cx = W/2, cy = H/2
    and fx = fy = focal give ``pix2cam_matrices``)."""
    fx, fy, cx, cy = np.moveaxis(np.asarray(intrinsics, dtype=np.float64), -1, 0)
    zeros, ones = np.zeros_like(fx), np.ones_like(fx)
    k_inv = np.array([[ones / fx, zeros, -cx / fx], [zeros, -ones / fy, cy / fy], [zeros, zeros, -ones]])
    return np.moveaxis(k_inv, -1, 0)
