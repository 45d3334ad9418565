"""The demo scene's true surfaces (`mipnerf_cli.demo.scenes`), as points, for measuring exports.

The primitives' parameters are the ones `demo.shade` traces (tests/commands/test_export_accuracy.py
checks that every ray hit of `demo.shade` lies on these surfaces). Points are spread
uniformly by area; `visible_mask` keeps those a set of cameras sees, since a surface no
training camera saw (the slab's underside) cannot be reconstructed.
"""

from __future__ import annotations

import math

import numpy as np

from mipnerf_cli.demo import scenes as demo

SPHERES = (  # (centre, radius)
    (np.array([0.0, 0.15, 0.45]), 0.6),
    (np.array([-0.75, -0.55, -0.35]), 0.42),
)
BOXES = (  # (centre, half size, yaw about z in radians)
    (np.array([0.75, -0.6, -0.4]), np.array([0.32, 0.32, 0.32]), 0.5),
    (np.array([0.0, 0.0, -0.85]), np.array([0.95, 0.95, 0.05]), 0.2),
)


def _sphere_points(rng, centre, radius, count):
    directions = rng.normal(size=(count, 3))
    return centre + radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _box_area(half):
    return 8 * (half[0] * half[1] + half[1] * half[2] + half[0] * half[2])


def _box_points(rng, centre, half, yaw, count):
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]]).repeat(2)  # faces -x, +x, -y, ...
    face = rng.choice(6, size=count, p=areas / areas.sum())
    local = rng.uniform(-1, 1, size=(count, 3)) * half
    axis = face // 2
    local[np.arange(count), axis] = np.where(face % 2 == 1, 1.0, -1.0) * half[axis]
    cos, sin = math.cos(yaw), math.sin(yaw)
    to_world = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])  # the inverse of demo.hit_box's
    return local @ to_world.T + centre


def surface_points(count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points uniform by area over the surfaces of the demo's four primitives."""
    rng = np.random.default_rng(seed)
    areas = [4 * math.pi * radius**2 for _, radius in SPHERES] + [_box_area(half) for _, half, _ in BOXES]
    counts = rng.multinomial(count, np.array(areas) / sum(areas))
    parts = [_sphere_points(rng, centre, radius, n) for (centre, radius), n in zip(SPHERES, counts[:2])]
    parts += [_box_points(rng, centre, half, yaw, n) for (centre, half, yaw), n in zip(BOXES, counts[2:])]
    return np.concatenate(parts)


def visible_mask(points: np.ndarray, cam2world: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """(P,) True where at least one camera (cam2world (C, 3, 4) or (C, 4, 4)) has a clear line
    of sight to the point: the scene's first hit along the ray towards it is the point itself.
    (The cameras' field of view is not checked: every demo camera looks at the whole scene.)"""
    seen = np.zeros(len(points), dtype=bool)
    colours = demo.palette(0)
    for pose in cam2world:
        origin = np.asarray(pose)[:3, 3].astype(np.float64)
        offset = points - origin
        distance = np.linalg.norm(offset, axis=1)
        _, hit = demo.shade(origin, offset / distance[:, None], colours)
        seen |= hit >= distance - tolerance
    return seen
