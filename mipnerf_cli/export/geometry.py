"""`mipnerf export` as a library function: a trained model's geometry as a PLY mesh or point cloud.

mesh: the density on a resolution^3 grid over the scene's bounds (a cube around the origin
reaching to the training cameras' near plane: mean camera distance - near), a threshold
(given, or Otsu's split of the histogram of log(1 + density)), scikit-image's marching cubes
(Lewiner), the largest connected piece (unless keep_all), and per vertex the colour the
model renders looking at it from the nearest training camera (a short ray segment around
the vertex, so that nothing in front of it is composited in).

pointcloud: every training view rendered at its training resolution; each pixel whose
accumulated opacity reaches min_acc gives a point at its rendered depth with its rendered
colour; points whose mean distance to their k nearest neighbours is more than std_ratio
standard deviations above the mean are dropped (statistical outlier removal).

Every query goes through the model in chunks; progress(stage, done, total) is called after
each one. The grid's memory is estimated before anything is computed and a grid that would
not fit is refused with the figure.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from mipnerf_cli.core import geometry
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.core.render import render_rays
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.ply import write_ply
from mipnerf_cli.runs.trained import SceneCameras
from mipnerf_cli.settings import ExportSettings

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Writer = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], None]  # (vertices, colours, faces)
BYTES_PER_VOXEL = 16  # float32 densities, marching cubes' float64 copy and its edge tables
MEMORY_SHARE = 0.8  # of the memory available now, the most a grid may take
WINDOW_SHARE = 0.05  # half-length of the colour ray segment, as a share of the grid's half-size


@dataclasses.dataclass
class ExportResult:
    path: Path
    what: str
    num_vertices: int
    num_faces: int  # 0 for a point cloud
    threshold: Optional[float]  # mesh: the density of the surface
    threshold_chosen: bool  # mesh: the threshold came from the histogram
    density_range: Optional[tuple[float, float]]  # mesh: min and max density on the grid
    pieces: int  # mesh: connected pieces found (pointcloud: 0)
    removed: int  # points or vertices dropped (outliers, smaller pieces)
    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    method: str = "density"
    floaters: int = 0  # fusion: pieces (mesh) or points (point cloud) dropped as floaters


def training_cameras(trained, data: Optional[Path], ndc: bool = False) -> SceneCameras:
    """The full-resolution training cameras of the scene `trained` was trained on (or `data`),
    through the door (`runs.trained`: the scene's kind checked against the checkpoint's), in
    float32 as export computes; a forward-facing capture (rays in NDC) is refused unless `ndc`."""
    scene = trained.scene(data)
    if scene.ndc and not ndc:
        raise MipNerfError(
            f"{scene.folder} is a forward-facing LLFF scene (rays in NDC); the density method needs a 360° scene; use --method fusion"
        )
    cameras = scene.cameras("train").full_resolution()
    return dataclasses.replace(cameras, cam2world=cameras.cam2world.float())


def scene_bounds(cameras: SceneCameras) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid's box: a cube around the origin (what the training cameras look at) of
    half-size `geometry_half_size`."""
    half = geometry_half_size(cameras)
    return torch.full((3,), -half), torch.full((3,), half)


def geometry_half_size(cameras: SceneCameras) -> float:
    """Mean camera distance from the origin - near: everything a camera renders lies beyond
    its near bound (2 for NeRF-synthetic's cameras at 4). Cameras closer than their near
    bound (a made-up scene) get half their distance instead."""
    distance = float(cameras.centres.double().norm(dim=-1).mean())
    half = distance - cameras.near
    return half if half > 0 else 0.5 * distance


def available_memory() -> Optional[int]:
    """Bytes of memory available now (Linux MemAvailable, else free physical pages), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def grid_memory(resolution: int) -> int:
    """Bytes a resolution^3 density grid and its marching cubes take (estimated)."""
    return resolution**3 * BYTES_PER_VOXEL


def check_grid_fits(resolution: int, available: Optional[int], flag: str = "--grid") -> None:
    """MipNerfError with the figures when a resolution^3 grid would not fit in `available` bytes.

    flag: the spelling of the grid's flag that the message names (`mipnerf export --resolution`,
    the older spelling, when that was given)."""
    if available is None:
        return
    needed = grid_memory(resolution)
    budget = MEMORY_SHARE * available
    if needed > budget:
        largest = int((budget / BYTES_PER_VOXEL) ** (1 / 3))
        raise MipNerfError(
            f"{flag} {resolution}: the density grid needs about {_size(needed)} of memory but "
            f"{_size(available)} is available; use {flag} {largest} or less"
        )


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB"  # pragma: no cover


def check_output(path: Path, default: bool = False) -> None:
    """MipNerfError when `path` cannot be written (checked before the work, and again by write_ply)."""
    if path.is_dir():
        raise MipNerfError(f"--out {path} is a folder; give a FILE.ply")
    if path.suffix.lower() != ".ply":
        raise MipNerfError(f"--out {path}: the file must end in .ply")
    parent = path.parent
    while default and not parent.exists() and parent != parent.parent:
        parent = parent.parent  # <run>/export/ is made when the file is written
    if not parent.is_dir():
        raise MipNerfError(f"--out {path}: the folder {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MipNerfError(f"--out {path}: cannot write there (permission denied); choose an --out you can write to")


# ----------------------------------------------------------------------------- mesh


@torch.no_grad()
def density_grid(
    model,
    lower: torch.Tensor,
    upper: torch.Tensor,
    resolution: int,
    variance: float,
    chunk: int,
    device: torch.device,
    progress: Optional[Progress] = None,
) -> np.ndarray:
    """(R, R, R) float32 densities of `model` at the grid points (x, y, z index order)."""
    axes = geometry.grid_axes(lower, upper, resolution)
    total = resolution**3
    out = np.empty(total, dtype=np.float32)
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        points = geometry.grid_points(axes, start, stop).to(device)
        out[start:stop] = geometry.density_from_points(model, points, variance).float().cpu().numpy()
        if progress is not None:
            progress("density", stop, total)
    return out.reshape(resolution, resolution, resolution)


def choose_threshold(densities: np.ndarray) -> float:
    """Otsu's split of the histogram of log(1 + density): empty space below, matter above.

    log1p keeps the near-zero densities of empty space (1e-30 and 1e-3 alike) in one class,
    which a plain log would spread over dozens of decades, and squeezes the saturated
    inside of objects, which would pull a linear split up towards it.
    """
    values = torch.from_numpy(np.log1p(densities.reshape(-1).astype(np.float64)))
    return float(math.expm1(geometry.otsu_threshold(values)))


def marching_cubes(densities: np.ndarray, threshold: float, lower: torch.Tensor, upper: torch.Tensor):
    """(vertices (V, 3) float32 world coordinates, faces (F, 3) int64) of the `threshold` surface."""
    from skimage.measure import marching_cubes as lewiner

    low, high = float(densities.min()), float(densities.max())
    if not low < threshold < high:
        raise MipNerfError(
            f"--threshold {threshold:.4g} gives no surface: the density on the grid ranges from {low:.4g} to "
            f"{high:.4g}; choose a threshold inside that range"
        )
    resolution = densities.shape[0]
    spacing = tuple(float(upper[i] - lower[i]) / (resolution - 1) for i in range(3))
    vertices, faces, _, _ = lewiner(densities, level=threshold, spacing=spacing)
    return (vertices + lower.numpy()[None, :]).astype(np.float32), faces.astype(np.int64)


def connected_pieces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) label of the connected piece (shared vertices) each vertex belongs to."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(num_vertices, num_vertices))
    _, labels = connected_components(graph, directed=False)
    return labels


def largest_piece(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The piece with the most faces: (vertices, faces renumbered, number of pieces there were)."""
    labels = connected_pieces(faces, len(vertices))
    pieces = int(labels.max()) + 1 if len(labels) else 0
    if pieces <= 1:
        return vertices, faces, pieces
    face_labels = labels[faces[:, 0]]
    biggest = int(np.bincount(face_labels).argmax())
    keep = labels == biggest
    renumber = np.cumsum(keep) - 1
    return vertices[keep], renumber[faces[face_labels == biggest]], pieces


@torch.no_grad()
def vertex_colours(
    model,
    vertices: np.ndarray,
    cameras: SceneCameras,
    window: float,
    chunk: int,
    device: torch.device,
    progress: Optional[Progress] = None,
) -> np.ndarray:
    """(V, 3) uint8: the colour the model renders along the ray from each vertex's nearest
    training camera, integrated over ``distance +- window`` around the vertex."""
    points = torch.from_numpy(vertices)
    total = len(points)
    colours = np.empty((total, 3), dtype=np.uint8)
    centres = cameras.centres
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        batch = points[start:stop]
        nearest = centres[geometry.nearest_camera(batch, centres)]
        fields = geometry.rays_towards(batch, nearest, cameras.focal, window)
        rays = RayBundle(**fields, lossmult=torch.ones(stop - start, 1))
        out = render_rays(model, rays, chunk, white_bkgd=False, device=device)
        rgb = out["rgb"] / out["acc"].clamp(min=1e-3)[:, None]  # the surface's own colour, not over black
        colours[start:stop] = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        if progress is not None:
            progress("colours", stop, total)
    return colours


def export_mesh(
    settings: ExportSettings, trained, cameras: SceneCameras, device, progress, out: Path, write: Writer
) -> ExportResult:
    """Density grid -> threshold -> marching cubes -> largest piece -> vertex colours -> `write`."""
    lower, upper = scene_bounds(cameras)
    variance = geometry.footprint_variance(float(cameras.centres.norm(dim=-1).mean()), cameras.focal)
    densities = density_grid(trained.model, lower, upper, settings.grid, variance, settings.chunk, device, progress)
    chosen = settings.threshold is None
    threshold = choose_threshold(densities) if chosen else settings.threshold
    vertices, faces = marching_cubes(densities, threshold, lower, upper)
    density_range = (float(densities.min()), float(densities.max()))
    del densities
    total_vertices = len(vertices)
    if settings.keep_all:
        pieces = int(connected_pieces(faces, len(vertices)).max()) + 1
    else:
        vertices, faces, pieces = largest_piece(vertices, faces)
    window = WINDOW_SHARE * float(upper[0])
    colours = vertex_colours(trained.model, vertices, cameras, window, settings.chunk, device, progress)
    write(vertices, colours, faces)
    return ExportResult(
        path=out,
        what="mesh",
        num_vertices=len(vertices),
        num_faces=len(faces),
        threshold=threshold,
        threshold_chosen=chosen,
        density_range=density_range,
        pieces=pieces,
        removed=total_vertices - len(vertices),
        lower=tuple(lower.tolist()),
        upper=tuple(upper.tolist()),
    )


# ----------------------------------------------------------------------------- point cloud


@torch.no_grad()
def depth_points(
    model, cameras: SceneCameras, min_acc: float, chunk: int, device, progress: Optional[Progress] = None
) -> tuple[np.ndarray, np.ndarray]:
    """(points (P, 3) float32, colours (P, 3) uint8) at the rendered depth of every training
    pixel whose accumulated opacity is at least `min_acc`."""
    from mipnerf_cli.core.rays import pinhole_rays

    all_points, all_colours = [], []
    views = cameras.cam2world.shape[0]
    for index in range(views):
        rays = pinhole_rays(
            cameras.cam2world[index], cameras.width, cameras.height, cameras.focal, cameras.near, cameras.far
        )
        out = render_rays(model, rays, chunk, white_bkgd=False, device=device)
        keep = out["acc"] >= min_acc
        points = geometry.points_from_depth(rays.origins[keep], rays.directions[keep], out["distance"][keep])
        rgb = out["rgb"][keep] / out["acc"][keep, None]
        all_points.append(points.numpy())
        all_colours.append((rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
        if progress is not None:
            progress("views", index + 1, views)
    return np.concatenate(all_points), np.concatenate(all_colours)


def outlier_mask(points: np.ndarray, neighbours: int, std_ratio: float) -> np.ndarray:
    """(P,) True for the points to keep: mean distance to the `neighbours` nearest others at
    most mean + std_ratio * std of that distance over all points."""
    from scipy.spatial import cKDTree

    if len(points) <= neighbours:
        return np.ones(len(points), dtype=bool)
    distances, _ = cKDTree(points).query(points, k=neighbours + 1)  # the first is the point itself
    mean = distances[:, 1:].mean(axis=1)
    return mean <= mean.mean() + std_ratio * mean.std()


def export_pointcloud(
    settings: ExportSettings, trained, cameras: SceneCameras, device, progress, out: Path, write: Writer
) -> ExportResult:
    """Rendered depth of the training views -> outlier removal -> `write`."""
    points, colours = depth_points(trained.model, cameras, settings.min_acc, settings.chunk, device, progress)
    if len(points) == 0:
        raise MipNerfError(
            f"no training pixel reaches accumulated opacity {settings.min_acc:g}; lower --min-acc or train longer"
        )
    keep = outlier_mask(points, settings.neighbours, settings.std_ratio)
    write(points[keep], colours[keep], None)
    lower, upper = scene_bounds(cameras)
    return ExportResult(
        path=out,
        what="pointcloud",
        num_vertices=int(keep.sum()),
        num_faces=0,
        threshold=None,
        threshold_chosen=False,
        density_range=None,
        pieces=0,
        removed=int((~keep).sum()),
        lower=tuple(lower.tolist()),
        upper=tuple(upper.tolist()),
    )


# ----------------------------------------------------------------------------- entry point


def export_geometry(
    settings: ExportSettings, progress: Optional[Progress] = None, grid_flag: str = "--grid"
) -> ExportResult:
    """Export the mesh or point cloud of the run's model to ``settings.out`` (default <run>/export/<what>.ply).

    grid_flag: the spelling of `settings.grid`'s flag that messages name (the older --resolution)."""
    from mipnerf_cli.runs.trained import load_trained_model, resolve_checkpoint
    from mipnerf_cli.runtime import resolve

    check_method(settings)
    if settings.what == "mesh" or settings.method == "fusion":  # before anything is loaded
        check_grid_fits(settings.grid, available_memory(), grid_flag)
    _, run_dir = resolve_checkpoint(settings.run, settings.ckpt)
    out = settings.out if settings.out is not None else run_dir / "export" / f"{settings.what}.ply"
    check_output(out, default=settings.out is None)
    # Export renders in float32 (no autocast, no TF32) whatever the device.
    device = resolve(settings.device, settings.cpu_threads, mixed_precision=False, tf32=False).device
    trained = load_trained_model(settings.run, settings.ckpt, device)
    cameras = training_cameras(trained, settings.data, ndc=settings.method == "fusion")

    def write(vertices: np.ndarray, colours: np.ndarray, faces: Optional[np.ndarray]) -> None:
        try:
            out.parent.mkdir(exist_ok=True)  # the default <run>/export/, made only now that there is a file for it
        except OSError as error:
            raise MipNerfError(
                f"{out.parent}: cannot create it ({error.strerror or error}); pass --out FILE.ply"
            ) from None
        write_ply(out, vertices, colours, faces)

    if settings.method == "fusion":
        return export_fused(settings, trained, cameras, device, progress, out, write)
    export = export_mesh if settings.what == "mesh" else export_pointcloud
    return export(settings, trained, cameras, device, progress, out, write)


DENSITY_FLAGS = {"threshold": "--threshold", "keep_all": "--keep-all"}


def check_method(settings: ExportSettings) -> None:
    """MipNerfError when a flag of the density method is given with the fusion method."""
    if settings.method != "fusion":
        return
    for field, flag in DENSITY_FLAGS.items():
        if getattr(settings, field) not in (None, False):
            raise MipNerfError(f"{flag} belongs to the density level set; add --method density to use it")


def export_fused(
    settings: ExportSettings, trained, cameras: SceneCameras, device, progress, out: Path, write: Writer
) -> ExportResult:
    """The fusion method (export/surface.py) -> `write`."""
    from mipnerf_cli.export import surface

    options = surface.FusionOptions(
        resolution=settings.grid,
        surface_opacity=settings.surface_opacity,
        min_views=settings.min_views,
        min_size=settings.min_size,
        chunk=settings.chunk,
    )
    default_box = None if cameras.ndc else scene_bounds(cameras)
    surfaces = surface.training_surfaces(trained.model, cameras, options, default_box, device, progress)
    if settings.what == "pointcloud":
        points, colours, dropped = surface.pointcloud(surfaces, settings.min_views)
        if len(points) == 0:
            raise MipNerfError(
                f"no surface point is seen by {settings.min_views} views; lower --min-views or train longer"
            )
        write(points, colours, None)
        lower, upper = points.min(axis=0), points.max(axis=0)
        counts = (len(points), 0, 0, dropped, dropped)
    else:
        vertices, colours, faces, found, lower, upper = surface.mesh(surfaces, options, progress)
        write(vertices, colours, faces)
        counts = (len(vertices), len(faces), found.total, found.dropped_vertices, found.dropped)
    return ExportResult(
        path=out,
        what=settings.what,
        num_vertices=counts[0],
        num_faces=counts[1],
        threshold=None,
        threshold_chosen=False,
        density_range=None,
        pieces=counts[2],
        removed=counts[3],
        lower=tuple(float(v) for v in lower),
        upper=tuple(float(v) for v in upper),
        method="fusion",
        floaters=counts[4],
    )
