"""Cameras of a reconstruction in the scene folder's conventions (bounds and the scene kind:
``data/layout.py``, the rule the loaders use too).

COLMAP stores world-to-camera poses with camera axes x right, y down, z forward; the scene
folder keeps COLMAP's world frame and units and writes camera-to-world matrices in OpenGL
camera axes (x right, y up, z back), as Blender and nerfstudio do.
"""

from __future__ import annotations

import numpy as np

from mipnerf_cli.data.formats.colmap import opengl_from_colmap


def opengl_cam2world(cam_from_world: np.ndarray) -> np.ndarray:
    """(3, 4) COLMAP world-to-camera ``[R | t]`` -> (4, 4) camera-to-world in OpenGL camera axes
    (`data.colmap.opengl_from_colmap`, the rule the COLMAP reader uses)."""
    return np.concatenate([opengl_from_colmap(cam_from_world[:3, :3], cam_from_world[:3, 3]), [[0.0, 0.0, 0.0, 1.0]]])


def point_depths(cam_from_world: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,) depths along the camera's viewing axis of world points (P, 3)."""
    return points @ cam_from_world[2, :3] + cam_from_world[2, 3]
