"""A procedural Blender-format scene for demos and tests: no download, seconds to make.

Four textured primitives (a checkered sphere, a striped sphere, a box with diagonal
stripes, a checkered slab) inside a sphere of radius 1.5 around the origin, seen by
cameras at radius 4 looking at the origin, like NeRF-synthetic: train and val views
scattered over the upper hemisphere, test views on a ring. Every object then lies 2.5 to
5.5 units from every camera, inside the usual near/far of 2..6.

The textures are fine on purpose: stripes and checks about 3 to 8 pixels wide at 64 px,
so at 1/4 and 1/8 of that resolution several periods fall into one pixel. A model that
samples one point per pixel (NeRF) aliases there; mip-NeRF's integrated encoding should
not, and that difference is what the demo measures. Each pixel is the mean of
``supersample x supersample`` rays, so the images, and the converter's 2x2 means of
them, are a correctly antialiased ground truth at every scale.

Images are straight (not premultiplied) RGBA: alpha is the pixel's coverage and the
colour is the mean colour of the rays that hit, so ``rgb * a + (1 - a)`` gives the
antialiased picture on white. Shading is Lambertian under a fixed light, so colours do
not depend on the view direction.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from mipnerf_cli.data.formats.transforms import SPLITS
from mipnerf_cli.data.images import run_in_threads, write_png
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.staging import write_generated_scene

CAMERA_RADIUS = 4.0
# NeRF-synthetic's horizontal field of view (radians).
CAMERA_ANGLE_X = 0.6911112070083618
LIGHT = np.array([0.4, 0.3, 1.0]) / np.linalg.norm([0.4, 0.3, 1.0])
AMBIENT = 0.35
SCENE_RADIUS = 1.65  # every primitive lies inside this sphere around the origin


@dataclasses.dataclass(frozen=True)
class DemoSceneSpec:
    """What to generate: image size, views per split, random seed, rays per pixel side."""

    height: int = 64
    width: int = 64
    num_train: int = 40
    num_val: int = 8
    num_test: int = 8
    seed: int = 0
    supersample: int = 4

    def views(self) -> dict[str, int]:
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}


# ---------------------------------------------------------------- geometry: ray hits
# Products with 3-vectors are written out: numpy would hand (N, 3) @ (3, 3) to a
# multi-threaded BLAS, which made rendering 3-4x slower on a busy 2-core machine.


def dot(vectors: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (N, 3) ``vectors`` with one (3,) ``vector``: (N,)."""
    return vectors[:, 0] * vector[0] + vectors[:, 1] * vector[1] + vectors[:, 2] * vector[2]


def transform(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``matrix @ v`` for each row v of (N, 3) ``vectors``: (N, 3)."""
    return vectors[:, 0:1] * matrix[:, 0] + vectors[:, 1:2] * matrix[:, 1] + vectors[:, 2:3] * matrix[:, 2]


def hit_sphere(origin, directions, center, radius):
    """Nearest positive hit distance of rays from ``origin`` (3,) along unit ``directions``
    (N, 3) with a sphere (inf where missed), and the unit normals (N, 3) there."""
    offset = origin - center
    b = dot(directions, offset)
    c = offset @ offset - radius**2
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = -b - root
    t = np.where(t > 1e-6, t, -b + root)
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    points = origin + directions * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, (points - center) / radius


def hit_box(origin, directions, center, half_size, yaw):
    """Nearest positive hit distance of rays from ``origin`` (3,) along ``directions`` (N, 3)
    with a box of ``half_size`` (3,) turned by ``yaw`` radians about z (inf where missed),
    the hit points in box coordinates (N, 3), the face axis (N,) (0, 1 or 2), and the
    world-to-box rotation (3, 3)."""
    cos, sin = math.cos(yaw), math.sin(yaw)
    to_local = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    local_origin = to_local @ (origin - center)
    local_dirs = transform(directions, to_local)
    # Rays parallel to a face get a tiny direction component instead of a division by zero.
    local_dirs[np.abs(local_dirs) < 1e-12] = 1e-12
    inverse = 1.0 / local_dirs
    t0 = (-half_size - local_origin) * inverse
    t1 = (half_size - local_origin) * inverse
    entry = np.minimum(t0, t1)
    axis = np.argmax(entry, axis=1)
    t_near = np.take_along_axis(entry, axis[:, None], 1)[:, 0]
    t_far = np.maximum(t0, t1).min(axis=1)
    hit = (t_near <= t_far) & (t_near > 1e-6)
    t = np.where(hit, t_near, np.inf)
    local_points = local_origin + local_dirs * np.where(hit, t_near, 0.0)[:, None]
    return t, local_points, axis, to_local


# ---------------------------------------------------------------- textures


def checker(u, v, period):
    """0/1 checkerboard with squares ``period`` wide in (u, v)."""
    return (np.floor(u / period) + np.floor(v / period)) % 2


def stripes(s, period):
    """0/1 stripes ``period`` wide along s."""
    return np.floor(s / period) % 2


def mix(pattern, colour_a, colour_b):
    """(N, 3) colours: colour_a where pattern is 0, colour_b where it is 1."""
    return np.where(pattern[:, None] > 0.5, colour_b, colour_a)


def lambert(normals):
    """Diffuse shading factor (N,) under the fixed light."""
    return AMBIENT + (1 - AMBIENT) * np.clip(dot(normals, LIGHT), 0.0, 1.0)


def palette(seed: int) -> np.ndarray:
    """Four (light, dark) colour pairs (4, 2, 3), one per object, shuffled by ``seed``.
    Each texture alternates a light and a dark colour so its aliasing is plain to see."""
    light = np.array([[0.95, 0.95, 0.92], [0.95, 0.85, 0.20], [0.55, 0.90, 0.95], [0.95, 0.60, 0.75]])
    dark = np.array([[0.75, 0.10, 0.10], [0.10, 0.20, 0.70], [0.10, 0.45, 0.15], [0.20, 0.10, 0.25]])
    rng = np.random.default_rng([seed, 1])
    return np.stack([light[rng.permutation(4)], dark[rng.permutation(4)]], axis=1)


def shade(origin: np.ndarray, directions: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trace rays from ``origin`` (3,) along unit ``directions`` (N, 3) through the scene:
    (N, 3) colours and (N,) distances to the nearest hit (inf where nothing is hit)."""
    count = directions.shape[0]
    best = np.full(count, np.inf)
    rgb = np.zeros((count, 3))

    def keep(t, colour_fn):
        nonlocal best
        closer = t < best
        if closer.any():
            rgb[closer] = colour_fn(closer)
            best = np.where(closer, t, best)

    # Sphere with a fine latitude/longitude checkerboard (about 0.1 units per square).
    center, radius = np.array([0.0, 0.15, 0.45]), 0.6
    t, normals = hit_sphere(origin, directions, center, radius)

    def checkered_sphere(mask):
        n = normals[mask]
        azimuth = np.arctan2(n[:, 1], n[:, 0]) * radius
        polar = np.arccos(np.clip(n[:, 2], -1, 1)) * radius
        return mix(checker(azimuth, polar, 0.095), *colours[0]) * lambert(n)[:, None]

    keep(t, checkered_sphere)

    # Smaller sphere with thin tilted bands.
    center2, radius2 = np.array([-0.75, -0.55, -0.35]), 0.42
    t, normals2 = hit_sphere(origin, directions, center2, radius2)

    def banded_sphere(mask):
        n = normals2[mask]
        s = dot(n, np.array([0.3, 0.5, 0.81])) * radius2
        return mix(stripes(s, 0.05), *colours[1]) * lambert(n)[:, None]

    keep(t, banded_sphere)

    # Box with diagonal stripes on every face.
    half = np.array([0.32, 0.32, 0.32])
    t, local, axis, to_local = hit_box(origin, directions, np.array([0.75, -0.6, -0.4]), half, 0.5)

    def striped_box(mask):
        p, a = local[mask], axis[mask]
        normal_local = np.zeros_like(p)
        normal_local[np.arange(len(a)), a] = np.sign(p[np.arange(len(a)), a])
        u = np.where(a == 0, p[:, 1], p[:, 0])
        v = np.where(a == 2, p[:, 1], p[:, 2])
        return mix(stripes(u + v, 0.06), *colours[2]) * lambert(transform(normal_local, to_local.T))[:, None]

    keep(t, striped_box)

    # A slab under everything, with a fine checkerboard on top.
    slab_half = np.array([0.95, 0.95, 0.05])
    t, slab_local, slab_axis, slab_rotation = hit_box(origin, directions, np.array([0.0, 0.0, -0.85]), slab_half, 0.2)

    def checkered_slab(mask):
        p, a = slab_local[mask], slab_axis[mask]
        normal_local = np.zeros_like(p)
        normal_local[np.arange(len(a)), a] = np.sign(p[np.arange(len(a)), a])
        pattern = checker(p[:, 0], p[:, 1], 0.075)
        return mix(pattern, *colours[3]) * lambert(transform(normal_local, slab_rotation.T))[:, None]

    keep(t, checkered_slab)
    return rgb, best


# ---------------------------------------------------------------- cameras


def look_at(eye: np.ndarray, target=np.zeros(3), up=np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """4x4 camera-to-world matrix (OpenGL/Blender: camera looks down -z, y up)."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right)
    true_up = np.cross(back, right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, true_up, back, eye
    return matrix


def sphere_point(azimuth: float, elevation: float, radius: float = CAMERA_RADIUS) -> np.ndarray:
    return radius * np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def camera_poses(spec: DemoSceneSpec) -> dict[str, list[np.ndarray]]:
    """Per split, 4x4 camera-to-world matrices: train/val uniform over the upper hemisphere
    (elevation 10..75 degrees), test on a ring at 30 degrees."""
    rng = np.random.default_rng([spec.seed, 0])
    poses = {}
    for split, count in spec.views().items():
        if split == "test":
            angles = [(2 * math.pi * k / max(count, 1), math.radians(30)) for k in range(count)]
        else:
            low, high = math.sin(math.radians(10)), math.sin(math.radians(75))
            angles = [(rng.uniform(0, 2 * math.pi), math.asin(rng.uniform(low, high))) for _ in range(count)]
        poses[split] = [look_at(sphere_point(azimuth, elevation)) for azimuth, elevation in angles]
    return poses


def focal_length(spec: DemoSceneSpec) -> float:
    return 0.5 * spec.width / math.tan(0.5 * CAMERA_ANGLE_X)


def render_view(cam2world: np.ndarray, spec: DemoSceneSpec, colours: np.ndarray) -> np.ndarray:
    """One supersampled view, (H, W, 4) uint8 straight RGBA."""
    s, height, width = spec.supersample, spec.height, spec.width
    focal = focal_length(spec)
    sub = (np.arange(s) + 0.5) / s
    xs = (np.arange(width)[:, None] + sub[None, :]).reshape(-1)
    ys = (np.arange(height)[:, None] + sub[None, :]).reshape(-1)
    x, y = np.meshgrid(xs, ys, indexing="xy")
    camera_dirs = np.stack([(x - width / 2) / focal, -(y - height / 2) / focal, -np.ones_like(x)], -1).reshape(-1, 3)
    directions = transform(camera_dirs, cam2world[:3, :3])
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origin = cam2world[:3, 3]
    # Only rays that pass through the scene's bounding sphere can hit anything.
    closest = dot(directions, origin)
    inside = origin @ origin - closest**2 < SCENE_RADIUS**2
    rgb = np.zeros((directions.shape[0], 3))
    distance = np.full(directions.shape[0], np.inf)
    rgb[inside], distance[inside] = shade(origin, directions[inside], colours)
    hit = np.isfinite(distance)
    # Mean over each pixel's s x s rays: coverage, and the mean colour of the rays that hit.
    rgb = rgb.reshape(height, s, width, s, 3).sum(axis=(1, 3))
    hits = hit.reshape(height, s, width, s).sum(axis=(1, 3)).astype(np.float64)
    colour = np.where(hits[..., None] > 0, rgb / np.maximum(hits, 1)[..., None], 0.0)
    alpha = hits / (s * s)
    rgba = np.concatenate([colour, alpha[..., None]], axis=-1)
    return np.clip(np.rint(rgba * 255), 0, 255).astype(np.uint8)


def check_spec(spec: DemoSceneSpec) -> None:
    """MipNerfError for sizes or counts the scene cannot be made with."""
    if spec.height < 8 or spec.width < 8:
        raise MipNerfError(f"--size must be at least 8 pixels, got {spec.height}x{spec.width}")
    for split, count in spec.views().items():
        if count < 1:
            raise MipNerfError(f"--{split} must be at least 1 view, got {count}")
    if spec.supersample < 1:
        raise MipNerfError(f"supersample must be at least 1, got {spec.supersample}")


def write_demo_scene(out_dir: Path, spec: DemoSceneSpec, workers: int | None = None, progress=None) -> None:
    """Render every view of ``spec`` into the existing folder ``out_dir`` as a Blender scene:
    transforms_<split>.json and <split>/r_<i>.png. progress(done, total) after each image."""
    colours = palette(spec.seed)
    poses = camera_poses(spec)
    jobs = [(split, i, pose) for split in SPLITS for i, pose in enumerate(poses[split])]
    for split in SPLITS:
        (out_dir / split).mkdir()

    def render_job(k: int) -> None:
        split, i, pose = jobs[k]
        write_png(out_dir / split / f"r_{i}.png", render_view(pose, spec, colours))

    run_in_threads(render_job, len(jobs), workers, progress)
    for split in SPLITS:
        frames = [
            {"file_path": f"./{split}/r_{i}", "rotation": 0.012566370614359171, "transform_matrix": pose.tolist()}
            for i, pose in enumerate(poses[split])
        ]
        with open(out_dir / f"transforms_{split}.json", "w", encoding="utf-8") as file:
            json.dump({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}, file, indent=4)


def make_demo_scene(
    out_dir: Path | str,
    spec: DemoSceneSpec = DemoSceneSpec(),
    overwrite: bool = False,
    workers: int | None = None,
    progress=None,
) -> Path:
    """Write the demo scene to ``out_dir`` all at once (hidden temporary folder, then rename).

    An existing non-empty ``out_dir`` is refused unless ``overwrite``, and even then only
    if it holds a Blender scene (transforms_train.json), so that no other folder is deleted.
    """
    check_spec(spec)
    return write_generated_scene(
        Path(out_dir),
        "transforms_train.json",
        overwrite,
        lambda staging: write_demo_scene(staging, spec, workers, progress),
    )
