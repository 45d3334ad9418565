"""How far recovered cameras are from the true ones, up to the similarity SfM cannot know.

SfM recovers a scene up to rotation, translation and scale; :func:`umeyama` finds the
similarity that best maps the recovered camera centres onto the true ones (least squares,
Umeyama 1991), and :func:`pose_errors` measures rotations and centres after it.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R (3, 3), translation t (3,) minimising sum |s R x + t - y|^2 over
    the rows of ``source`` and ``target`` (N, 3), N >= 3 not all on a line."""
    mean_x, mean_y = source.mean(0), target.mean(0)
    x, y = source - mean_x, target - mean_y
    covariance = y.T @ x / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (x**2).sum(1).mean())
    translation = mean_y - scale * rotation @ mean_x
    return scale, rotation, translation


@dataclasses.dataclass(frozen=True)
class PoseErrors:
    """Per camera: rotation error (degrees) and centre error (fraction of the mean camera distance)."""

    rotation_deg: np.ndarray  # (N,)
    centre: np.ndarray  # (N,)
    scale: float

    def summary(self) -> dict[str, float]:
        return {
            "rotation_median_deg": float(np.median(self.rotation_deg)),
            "rotation_max_deg": float(self.rotation_deg.max()),
            "centre_median_pct": float(100 * np.median(self.centre)),
            "centre_max_pct": float(100 * self.centre.max()),
        }


def pose_errors(recovered: np.ndarray, true: np.ndarray, reference_point: np.ndarray | None = None) -> PoseErrors:
    """Errors of recovered (N, 4, 4) camera-to-world matrices against the true (N, 4, 4) ones
    (same camera axes), after the similarity that aligns the centres. Centre errors are
    divided by the mean distance of the true cameras from ``reference_point`` (default: the
    origin, the subject's centre in Blender scenes)."""
    scale, rotation, translation = umeyama(recovered[:, :3, 3], true[:, :3, 3])
    centres = scale * recovered[:, :3, 3] @ rotation.T + translation
    rotations = rotation[None] @ recovered[:, :3, :3]
    relative = np.transpose(true[:, :3, :3], (0, 2, 1)) @ rotations
    cosines = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    point = np.zeros(3) if reference_point is None else reference_point
    distance = np.linalg.norm(true[:, :3, 3] - point, axis=-1).mean()
    return PoseErrors(
        np.degrees(np.arccos(cosines)), np.linalg.norm(centres - true[:, :3, 3], axis=-1) / distance, scale
    )
