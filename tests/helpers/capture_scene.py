"""A procedural photo capture for the `mipnerf convert PHOTOS` tests: the demo scene's objects
painted with a non-repeating colour noise (SIFT cannot match the demo's periodic checks and
stripes reliably), seen from an orbit of cameras, saved as photos without poses.

The true cameras are returned so that a test can compare what SfM recovers with them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from mipnerf_cli.demo import scenes as demo

BACKGROUND = 0.55  # grey, flat: no features off the objects


def noise_colours(points: np.ndarray, seed: int = 0, waves: int = 24) -> np.ndarray:
    """(N, 3) points -> (N, 3) colours in [0, 1]: per channel a sum of plane waves with random
    directions, frequencies (periods 0.08..0.8 units) and phases, so no patch repeats."""
    rng = np.random.default_rng([seed, 7])
    directions = rng.normal(size=(3, waves, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    frequencies = 2 * math.pi / rng.uniform(0.08, 0.8, size=(3, waves, 1))
    phases = rng.uniform(0, 2 * math.pi, size=(3, waves))
    k = directions * frequencies  # (3, waves, 3)
    values = np.cos(np.einsum("nd,cwd->ncw", points, k) + phases[None]).sum(-1) / math.sqrt(waves / 2)
    return np.clip(0.5 + 0.22 * values, 0.0, 1.0)


def orbit_cameras(count: int, radius: float = demo.CAMERA_RADIUS) -> list[np.ndarray]:
    """4x4 OpenGL camera-to-world matrices looking at the origin: two rings (elevations 20 and
    40 degrees), azimuths interleaved, in capture order around the object."""
    cameras = []
    for k in range(count):
        azimuth = 2 * math.pi * k / count
        elevation = math.radians(20 if k % 2 == 0 else 40)
        cameras.append(demo.look_at(demo.sphere_point(azimuth, elevation, radius)))
    return cameras


def render_photo(cam2world: np.ndarray, size: int, focal: float, supersample: int = 2, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: the demo geometry coloured by :func:`noise_colours`, shaded by the
    demo's light, on a flat grey background."""
    s = supersample
    sub = (np.arange(s) + 0.5) / s
    xs = (np.arange(size)[:, None] + sub[None, :]).reshape(-1)
    x, y = np.meshgrid(xs, xs, indexing="xy")
    camera_dirs = np.stack([(x - size / 2) / focal, -(y - size / 2) / focal, -np.ones_like(x)], -1).reshape(-1, 3)
    directions = camera_dirs @ cam2world[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origin = cam2world[:3, 3]
    shaded, distance = demo.shade(origin, directions, demo.palette(seed))
    hit = np.isfinite(distance)
    rgb = np.full(directions.shape, BACKGROUND)
    points = origin + directions[hit] * distance[hit, None]
    light = shaded[hit].mean(-1, keepdims=True)
    rgb[hit] = noise_colours(points, seed) * (0.45 + 0.8 * light)
    rgb = rgb.reshape(size, s, size, s, 3).mean(axis=(1, 3))
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def write_photo_capture(
    folder: Path, count: int = 24, size: int = 160, quality: int = 95, seed: int = 0
) -> tuple[list[Path], list[np.ndarray], float]:
    """Write ``count`` JPEG photos ``IMG_<k>.JPG`` to ``folder`` (created); returns their paths,
    the true 4x4 OpenGL camera-to-world matrices and the true focal length in pixels."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    focal = 0.5 * size / math.tan(0.5 * demo.CAMERA_ANGLE_X)
    cameras = orbit_cameras(count)
    paths = []
    for k, cam2world in enumerate(cameras):
        path = folder / f"IMG_{k:04d}.JPG"
        Image.fromarray(render_photo(cam2world, size, focal, seed=seed)).save(path, quality=quality)
        paths.append(path)
    return paths, cameras, focal
