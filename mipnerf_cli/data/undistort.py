"""Undistorting photos of OpenCV-model cameras to pinhole images, with OpenCV (cv2).

Cameras with radial / tangential distortion (COLMAP's SIMPLE_RADIAL, RADIAL, OPENCV,
FULL_OPENCV; nerfstudio's OPENCV with k1, k2, k3, p1, p2) are made pinhole cameras when their
images are read: the new camera is ``cv2.getOptimalNewCameraMatrix`` with alpha 0 (zoomed so
that every pixel of the image, same size, has a source pixel: no black borders to train on)
and each image is resampled bilinearly (``cv2.remap``). Fisheye models are not handled here.

Pixel coordinates: the captures count pixel centres at +0.5 (COLMAP, nerfstudio), OpenCV at
integers, so cx, cy move by 0.5 on the way in and out.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV's distortion vector order; COLMAP's FULL_OPENCV is OpenCV's rational model.
COEFFICIENTS = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")


def opencv_coefficients(values: dict[str, float]) -> np.ndarray:
    """(8,) float64 distortion vector in OpenCV's order from named coefficients (missing: 0)."""
    return np.array([float(values.get(name, 0.0)) for name in COEFFICIENTS], dtype=np.float64)


def _matrix(intrinsics) -> np.ndarray:
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])


def pinhole_camera(intrinsics, coefficients: np.ndarray, height: int, width: int) -> np.ndarray:
    """(4,) fx, fy, cx, cy of the pinhole camera the images of a distorted camera (``intrinsics``
    (4,) fx, fy, cx, cy, ``coefficients`` (8,)) are undistorted to, same size, no invalid pixel."""
    new, _ = cv2.getOptimalNewCameraMatrix(_matrix(intrinsics), coefficients, (width, height), 0, (width, height))
    return np.array([new[0, 0], new[1, 1], new[0, 2] + 0.5, new[1, 2] + 0.5])


def undistortion_maps(intrinsics, coefficients: np.ndarray, pinhole, height: int, width: int):
    """The (map_x, map_y) float32 (H, W) source pixel of every pixel of the undistorted image."""
    return cv2.initUndistortRectifyMap(
        _matrix(intrinsics), coefficients, None, _matrix(pinhole), (width, height), cv2.CV_32FC1
    )


def undistort_image(rgba: np.ndarray, maps) -> np.ndarray:
    """(H, W, 4) uint8 ``rgba`` resampled through ``undistortion_maps`` (bilinear)."""
    return cv2.remap(rgba, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
