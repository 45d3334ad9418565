"""A procedural forward-facing (LLFF) scene: the Blender demo's textured objects in front of a
checkered backdrop, photographed from a small jittered grid of cameras that all look the
same way, written as ``poses_bounds.npy`` + ``images/`` + ``images_2/`` + ``images_4/``.

The bounds are the true nearest and farthest depths (along each camera's axis) of what the
camera sees, which is what COLMAP-derived bounds approximate. Objects and shading are those
of ``mipnerf_cli.demo.scenes`` (its ``shade``); only the backdrop and the cameras are new.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mipnerf_cli.data.formats.capture_cameras import POSES_BOUNDS
from mipnerf_cli.data.formats.llff_poses import llff_pose_row
from mipnerf_cli.data.images import area_downscale, run_in_threads, write_png
from mipnerf_cli.demo.scenes import checker, look_at, mix, palette, shade, transform
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.staging import write_generated_scene

BACKDROP_Y = 2.0  # the backdrop is the plane y = 2, facing the cameras
CAMERA_Y = -4.5  # cameras stand around (0, -4.5, 0.2) looking along +y
FOV_X = 1.0  # horizontal field of view, radians
FACTORS = (2, 4)


@dataclasses.dataclass(frozen=True)
class ForwardFacingSpec:
    """Image size (width, height: multiples of 4), grid of cameras, seed, rays per pixel side."""

    width: int = 64
    height: int = 48
    num_images: int = 12  # on a grid 4 wide (fewer when there are fewer images)
    seed: int = 0
    supersample: int = 3
    spacing: float = 0.35  # grid step in scene units


def check_forward_facing_spec(spec: ForwardFacingSpec) -> None:
    if spec.width < 8 or spec.height < 8 or spec.width % 4 or spec.height % 4:
        raise MipNerfError(
            f"--size: width and height must be multiples of 4 and at least 8, got {spec.width}x{spec.height}"
        )
    if spec.num_images < 2:
        raise MipNerfError(f"--train: a forward-facing scene needs at least 2 images, got {spec.num_images}")


def grid_cameras(spec: ForwardFacingSpec) -> list[np.ndarray]:
    """4x4 camera-to-world matrices (x right, y up, looking down -z) on a jittered grid, in capture order."""
    rng = np.random.default_rng([spec.seed, 2])
    cameras = []
    cols = min(4, spec.num_images)
    rows = -(-spec.num_images // cols)
    for r in range(rows):
        for c in range(cols):
            offset = np.array([(c - (cols - 1) / 2) * spec.spacing, 0.0, ((rows - 1) / 2 - r) * spec.spacing * 0.75])
            eye = np.array([0.0, CAMERA_Y, 0.2]) + offset + rng.normal(0.0, 0.04 * spec.spacing, 3)
            target = np.array([0.0, 0.0, 0.0]) + rng.normal(0.0, 0.05, 3)
            cameras.append(look_at(eye, target))
    return cameras[: spec.num_images]


def focal_length(spec: ForwardFacingSpec) -> float:
    return 0.5 * spec.width / np.tan(0.5 * FOV_X)


def render_forward_view(
    cam2world: np.ndarray, spec: ForwardFacingSpec, colours: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """(H, W, 3) uint8 RGB and the (near, far) depth bounds along the camera's axis."""
    s, height, width, focal = spec.supersample, spec.height, spec.width, focal_length(spec)
    sub = (np.arange(s) + 0.5) / s
    xs = (np.arange(width)[:, None] + sub[None, :]).reshape(-1)
    ys = (np.arange(height)[:, None] + sub[None, :]).reshape(-1)
    x, y = np.meshgrid(xs, ys, indexing="xy")
    camera_dirs = np.stack([(x - width / 2) / focal, -(y - height / 2) / focal, -np.ones_like(x)], -1).reshape(-1, 3)
    directions = transform(camera_dirs, cam2world[:3, :3])
    norms = np.linalg.norm(directions, axis=-1)
    directions = directions / norms[:, None]
    origin = cam2world[:3, 3]
    rgb, distance = shade(origin, directions, colours)
    # The backdrop: a large plane with a coarse and a fine checkerboard.
    t_plane = (BACKDROP_Y - origin[1]) / directions[:, 1]
    behind = np.isfinite(distance) & (distance < t_plane)
    points = origin + directions * t_plane[:, None]
    pattern = 0.6 * checker(points[:, 0], points[:, 2], 0.5) + 0.4 * checker(points[:, 0], points[:, 2], 0.11)
    backdrop = mix(pattern, np.array([0.9, 0.85, 0.7]), np.array([0.25, 0.3, 0.45]))
    rgb = np.where(behind[:, None], rgb, backdrop)
    distance = np.where(behind, distance, t_plane)
    depth = distance / norms  # along the camera axis (camera-space z = -1 per unit of camera_dirs)
    rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    image = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    return image, float(depth.min()), float(depth.max())


def write_forward_facing_scene(
    out_dir: Path, spec: ForwardFacingSpec, workers: int | None = None, progress=None
) -> None:
    """Render every camera into the existing folder ``out_dir``."""
    colours = palette(spec.seed)
    cameras = grid_cameras(spec)
    folders = [out_dir / "images"] + [out_dir / f"images_{f}" for f in FACTORS]
    for folder in folders:
        folder.mkdir()
    rows: list = [None] * len(cameras)

    def render_job(k: int) -> None:
        image, near, far = render_forward_view(cameras[k], spec, colours)
        name = f"IMG_{k:04d}.png"
        write_png(folders[0] / name, image)
        for factor, folder in zip(FACTORS, folders[1:]):
            write_png(folder / name, area_downscale(image, factor))
        rows[k] = llff_pose_row(cameras[k], spec.height, spec.width, focal_length(spec), near, far)

    run_in_threads(render_job, len(cameras), workers, progress)
    np.save(out_dir / POSES_BOUNDS, np.array(rows, dtype=np.float64))


def make_forward_facing_scene(
    out_dir: Path | str,
    spec: ForwardFacingSpec = ForwardFacingSpec(),
    overwrite: bool = False,
    workers: int | None = None,
    progress=None,
) -> Path:
    """Write the scene to ``out_dir`` all at once (hidden temporary folder, then rename); an
    existing non-empty folder is replaced only with ``overwrite`` and only if it is an LLFF scene."""
    check_forward_facing_spec(spec)
    return write_generated_scene(
        Path(out_dir),
        POSES_BOUNDS,
        overwrite,
        lambda staging: write_forward_facing_scene(staging, spec, workers, progress),
    )
