"""Cameras and bounds of a reconstruction in the scene folder's conventions, and the scene kind.

COLMAP stores world-to-camera poses with camera axes x right, y down, z forward; the scene
folder keeps COLMAP's world frame and units and writes camera-to-world matrices in OpenGL
camera axes (x right, y up, z back), as Blender and nerfstudio do.
"""

from __future__ import annotations

import numpy as np

from mipnerf_cli.errors import MipNerfError

SCENE_KINDS = ("forward-facing", "360")
# Median angle, seen from the centre of the sparse points, between each camera and the mean
# camera direction: a few degrees for a forward-facing capture (cameras on a small patch in
# front of the scene), tens of degrees for one that goes around its subject.
SPREAD_360_DEG = 20.0
NEAR_PERCENTILE, FAR_PERCENTILE = 0.1, 99.9  # as LLFF's imgs2poses.py
NEAR_MARGIN, FAR_MARGIN = 0.9, 1.1
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def opengl_cam2world(cam_from_world: np.ndarray) -> np.ndarray:
    """(3, 4) COLMAP world-to-camera ``[R | t]`` -> (4, 4) camera-to-world in OpenGL camera axes."""
    rotation, translation = cam_from_world[:3, :3], cam_from_world[:3, 3]
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.T @ OPENCV_TO_OPENGL
    matrix[:3, 3] = -rotation.T @ translation
    return matrix


def point_depths(cam_from_world: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,) depths along the camera's viewing axis of world points (P, 3)."""
    return points @ cam_from_world[2, :3] + cam_from_world[2, 3]


def depth_bounds(depths: np.ndarray) -> tuple[float, float]:
    """(near, far) of one image from the depths of the sparse points it sees."""
    depths = depths[depths > 0]
    if depths.size == 0:
        raise MipNerfError("a registered image sees no 3D point in front of it; the reconstruction is broken")
    near = float(np.percentile(depths, NEAR_PERCENTILE)) * NEAR_MARGIN
    far = float(np.percentile(depths, FAR_PERCENTILE)) * FAR_MARGIN
    return near, far


def camera_spread_deg(centres: np.ndarray, points: np.ndarray) -> float:
    """Median angle (degrees) between each camera centre (N, 3) and the mean camera
    direction, both seen from the median of the sparse points (P, 3)."""
    centre = np.median(points, axis=0)
    rays = centres - centre
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    mean = rays.mean(0)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:  # cameras all around: no mean direction
        return 90.0
    cosines = np.clip(rays @ (mean / norm), -1.0, 1.0)
    return float(np.degrees(np.median(np.arccos(cosines))))


def detect_scene_kind(centres: np.ndarray, points: np.ndarray) -> str:
    """ "360" when the cameras go around the centre of the points, else "forward-facing"."""
    return "360" if camera_spread_deg(centres, points) > SPREAD_360_DEG else "forward-facing"
