"""How close reconstructed geometry is to the truth: Chamfer distance, precision, recall, F-score.

Both sides are point sets. For a mesh, `mesh_surface_points` samples its triangles
uniformly by area, so that big and small triangles count by the surface they cover.
Definitions (as in Tanks and Temples / DTU evaluations):
  accuracy     mean distance from each predicted point to the nearest true point;
  completeness mean distance from each true point to the nearest predicted point;
  chamfer      (accuracy + completeness) / 2;
  precision    share of predicted points within `tau` of the truth; recall the share of
  true points within `tau` of the prediction; F-score their harmonic mean.
"""

from __future__ import annotations

import numpy as np


def mesh_surface_points(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points uniform by area on the triangles `faces` (F, 3) of `vertices` (V, 3)."""
    rng = np.random.default_rng(seed)
    corners = vertices[faces].astype(np.float64)  # (F, 3, 3)
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    chosen = rng.choice(len(faces), size=count, p=areas / areas.sum())
    u, v = rng.uniform(size=(2, count))
    flip = u + v > 1  # fold the unit square onto the triangle
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    a, b, c = corners[chosen, 0], corners[chosen, 1], corners[chosen, 2]
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


def surface_scores(predicted: np.ndarray, truth: np.ndarray, tau: float) -> dict[str, float]:
    """accuracy, completeness, chamfer (scene units), precision, recall, fscore (0..1) at `tau`."""
    from scipy.spatial import cKDTree

    to_truth, _ = cKDTree(truth).query(predicted)
    to_predicted, _ = cKDTree(predicted).query(truth)
    precision = float((to_truth <= tau).mean())
    recall = float((to_predicted <= tau).mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    accuracy, completeness = float(to_truth.mean()), float(to_predicted.mean())
    return {
        "accuracy": accuracy,
        "completeness": completeness,
        "chamfer": 0.5 * (accuracy + completeness),
        "precision": precision,
        "recall": recall,
        "fscore": fscore,
    }
