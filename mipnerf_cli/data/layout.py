"""What a capture's camera layout says: forward-facing or 360°, and bounds when none are known.

Cameras are camera-to-world matrices in OpenGL / Blender axes (x right, y up, looking down
-z), ``(N, 3, 4)`` or ``(N, 4, 4)``, in any world frame and unit. numpy only (no torch), so
``mipnerf convert`` can use it too.

Scene kind: a forward-facing capture (LLFF) has every camera looking roughly the same way; a
360° capture looks at its subject from around it. The rule is the spread of the viewing
directions: the angle between each camera's view direction and the mean view direction; when
the 90th percentile of those angles is above ``SPREAD_360_DEG`` the capture is 360°. With the
sparse points, the directions taken are those from the points' median to each camera centre
instead (the same rule, seen from the subject; it does not depend on where the cameras look).

Bounds from sparse points (a COLMAP model, `mipnerf convert`): per image, the 0.1 and 99.9
percentiles of the depths of the points it observes (as LLFF's imgs2poses), times 0.9 and 1.1.
Only reliable points count (seen in at least ``RELIABLE_TRACK`` images, reprojection error
under ``RELIABLE_ERROR_PX``; an image that sees none of them uses all its points): on lego's
100 photos a handful of stray points (0.1 %, up to 25 object radii away) otherwise pushed
some images' far bound to 4x the true one, and a spherified scene's far is the largest of all.

Fallback bounds (a nerfstudio ``transforms.json`` without per-frame near/far): the centre is the
point nearest to every optical axis (least squares, the centre ``spherify`` uses) and r the
root-mean-square camera distance from it. The scene is taken to lie within 2 r of the centre:
near = ``FALLBACK_NEAR`` * r, far = ``FALLBACK_FAR`` * r for every image. When the optical
axes are (nearly) parallel they have no nearest point; the centre is then 10 times the spread
of the camera centres ahead of their mean.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

SceneKind = Literal["forward-facing", "360"]
SCENE_KINDS: tuple[str, ...] = ("forward-facing", "360")
SPREAD_360_DEG = 45.0
FALLBACK_NEAR = 0.1
FALLBACK_FAR = 3.0
NEAR_PERCENTILE, FAR_PERCENTILE = 0.1, 99.9  # as LLFF's imgs2poses.py
NEAR_MARGIN, FAR_MARGIN = 0.9, 1.1
RELIABLE_TRACK, RELIABLE_ERROR_PX = 3, 1.5


def view_directions(cam2world: np.ndarray) -> np.ndarray:
    """(N, 3) unit viewing directions (-z axis) of cameras ``cam2world`` (N, 3|4, 4)."""
    forward = -np.asarray(cam2world, dtype=np.float64)[:, :3, 2]
    return forward / np.linalg.norm(forward, axis=-1, keepdims=True)


def direction_spread_deg(directions: np.ndarray) -> float:
    """90th percentile of the angles (degrees) between unit ``directions`` (N, 3) and their mean."""
    mean = directions.mean(0)
    norm = np.linalg.norm(mean)
    if norm < 1e-9:  # directions cancel out: cameras all around
        return 180.0
    cosines = np.clip(directions @ (mean / norm), -1.0, 1.0)
    return float(np.percentile(np.degrees(np.arccos(cosines)), 90))


def layout_spread_deg(cam2world: np.ndarray, points: Optional[np.ndarray] = None) -> float:
    """The spread (degrees) the scene kind is decided on: of the directions from the points'
    median to the cameras ``cam2world`` (N, 3|4, 4) when sparse ``points`` (P, 3) are given,
    else of the viewing directions (see the module docstring)."""
    cam2world = np.asarray(cam2world, dtype=np.float64)
    if points is not None and len(points) > 0:
        offsets = cam2world[:, :3, 3] - np.median(np.asarray(points, dtype=np.float64), axis=0)
        directions = offsets / np.maximum(np.linalg.norm(offsets, axis=-1, keepdims=True), 1e-12)
    else:
        directions = view_directions(cam2world)
    return direction_spread_deg(directions)


def detect_scene_kind(cam2world: np.ndarray, points: Optional[np.ndarray] = None) -> SceneKind:
    """ "360" or "forward-facing" from the cameras ``cam2world`` (N, 3|4, 4) and, when given, the
    sparse points ``points`` (P, 3) in the same world frame (see the module docstring)."""
    return "360" if layout_spread_deg(cam2world, points) > SPREAD_360_DEG else "forward-facing"


def reliable_points(track_lengths: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """(P,) bool: which sparse points the bounds trust (module docstring), from their track
    lengths (P,) (images that see the point) and mean reprojection errors (P,) in pixels."""
    return (np.asarray(track_lengths) >= RELIABLE_TRACK) & (np.asarray(errors) < RELIABLE_ERROR_PX)


def depth_bounds(depths: np.ndarray) -> Optional[tuple[float, float]]:
    """(near, far) of one image from the depths (P,) of the sparse points it observes (module
    docstring), or None when none lies in front of it."""
    depths = np.asarray(depths, dtype=np.float64)
    depths = depths[depths > 0]
    if depths.size == 0:
        return None
    near, far = np.percentile(depths, NEAR_PERCENTILE), np.percentile(depths, FAR_PERCENTILE)
    return float(near) * NEAR_MARGIN, float(far) * FAR_MARGIN


def axes_centre(cam2world: np.ndarray) -> Optional[np.ndarray]:
    """(3,) the point nearest to every optical axis (least squares), or None when the axes are
    (nearly) parallel and have no such point."""
    cam2world = np.asarray(cam2world, dtype=np.float64)
    directions = view_directions(cam2world)
    centres = cam2world[:, :3, 3]
    projectors = np.eye(3) - directions[:, :, None] * directions[:, None, :]  # (N, 3, 3)
    a = projectors.mean(0)
    b = (projectors @ centres[:, :, None]).mean(0)[:, 0]
    if np.linalg.eigvalsh(a)[0] < 1e-3:
        return None
    return np.linalg.solve(a, b)


def fallback_bounds(cam2world: np.ndarray) -> np.ndarray:
    """(N, 2) near / far of every camera when the capture records none (module docstring)."""
    cam2world = np.asarray(cam2world, dtype=np.float64)
    centres = cam2world[:, :3, 3]
    centre = axes_centre(cam2world)
    if centre is None:
        spread = float(np.sqrt(np.mean(np.sum((centres - centres.mean(0)) ** 2, -1))))
        mean_forward = view_directions(cam2world).mean(0)
        centre = centres.mean(0) + 10.0 * max(spread, 1e-6) * mean_forward / np.linalg.norm(mean_forward)
    radius = float(np.sqrt(np.mean(np.sum((centres - centre) ** 2, -1))))
    radius = max(radius, 1e-6)
    return np.tile(np.array([[FALLBACK_NEAR * radius, FALLBACK_FAR * radius]]), (len(centres), 1))
