"""`mipnerf export`'s default method (fusion): the surface where the model's views put it.

1. Every training view is rendered once (colour, opacity; export/views.py).
2. The model's density on a grid over the box its surfaces lie in (half the fusion grid's
   points per axis; a density query per grid point through the model protocol's
   ``density_at``), and along every training ray the
   first place where the opacity accumulated through that grid reaches `surface_opacity`
   (0.2): the front of the rendered surface. (The rendered depth itself, the weights' mean,
   lies behind it: a trained field's density rises over a few pixels' depth, and on the
   demo scene the mean sits a median 0.096 units, 6 % of the scene radius, behind the true
   surface; the 0.2 crossing sits 0.012 units behind it. docs/export.md has the figures.)
3. Those depths, one map per view, are checked against each other: a surface point is a
   floater when fewer than `min_views` views render a surface within `tolerance` of it.
   The point cloud is the points that pass, with their rendered colours.
4. The mesh: the depth maps fused into a truncated signed distance grid (export/fusion.py;
   a view that looks through a floater carves it away), its zero level set by marching
   cubes, each vertex coloured by the views that agree with it, and pieces that are small
   (under `min_size` of the scene's diagonal) or that fewer than `min_views` views agree
   with dropped and counted (export/pieces.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np
import torch

from mipnerf_cli.core import geometry
from mipnerf_cli.export import fusion, pieces, views

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SURFACE_ACC = 0.5  # a pixel rendering at least this opacity has a surface
EMPTY_ACC = 0.05  # one rendering less looked through empty space
TRUNCATION_PIXELS = 2.5  # the fusion's truncation, in pixel widths at the median surface depth
TOLERANCE_PIXELS = 1.25  # how far two views' surfaces may differ and agree, likewise
BOX_PERCENTILE = 0.1  # the surfaces' box spans these percentiles of their points (per axis)
RAYS_PER_MARCH = 4096
VOXELS_PER_FUSION = 1 << 20


@dataclasses.dataclass(frozen=True)
class FusionOptions:
    resolution: int  # grid points along the box's longest side (density grid and TSDF)
    surface_opacity: float  # accumulated opacity that marks the surface along a ray
    min_views: int  # views that must agree with a point or piece
    min_size: float  # smallest piece kept, as a share of the surfaces' box diagonal
    chunk: int  # points or rays per forward pass


@dataclasses.dataclass
class Surfaces:
    """The training views' surfaces: depth maps, their points, and how many views agree."""

    views: views.RenderedViews
    depths: list[torch.Tensor]  # V (H, W) along each view's axis (+inf empty, nan unsure)
    points: torch.Tensor  # (P, 3) float64 world
    colours: torch.Tensor  # (P, 3) float32 in [0, 1]
    agreeing: torch.Tensor  # (P,) int64 views that render a surface within tolerance
    footprint: float  # one pixel's width at the median surface depth (scene units)


def model_box(rendered: views.RenderedViews, cameras, default_box) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) (3,) of the box in the model's space (world, or NDC) that holds the
    rendered surface points, within `default_box` ((lower, upper), or None)."""
    chunks = []
    for index, (distance, acc) in enumerate(zip(rendered.distance, rendered.acc)):
        rays = _rays(cameras, rendered, index)
        surface = acc.reshape(-1) >= SURFACE_ACC
        points = (
            rays.origins[surface].double()
            + distance.reshape(-1)[surface].double()[:, None] * rays.directions[surface].double()
        )
        chunks.append(points)
    points = torch.cat(chunks) if chunks else torch.zeros(0, 3, dtype=torch.float64)
    if len(points) == 0:
        from mipnerf_cli.errors import MipNerfError

        raise MipNerfError("no training view renders a surface (opacity 0.5 or more anywhere); train longer")
    low = torch.quantile(points[:: max(1, len(points) // 100_000)], BOX_PERCENTILE / 100, dim=0)
    high = torch.quantile(points[:: max(1, len(points) // 100_000)], 1 - BOX_PERCENTILE / 100, dim=0)
    margin = 0.05 * (high - low).max()
    low, high = low - margin, high + margin
    if default_box is not None:
        low, high = torch.maximum(low, default_box[0].double()), torch.minimum(high, default_box[1].double())
    return low.float(), high.float()


def _rays(cameras, rendered: views.RenderedViews, index: int):
    return cameras.rays(
        rendered.cam2world[index], cameras.widths[index], cameras.heights[index], float(cameras.focals[index])
    )


def grid_shape(lower: torch.Tensor, upper: torch.Tensor, resolution: int) -> tuple[tuple[int, int, int], float]:
    """((X, Y, Z), spacing): a grid of `resolution` points along the box's longest side."""
    extent = (upper - lower).double()
    spacing = float(extent.max()) / (resolution - 1)
    shape = tuple(max(2, int(math.ceil(float(side) / spacing)) + 1) for side in extent)
    return shape, spacing


def model_variance(cameras) -> float:
    """Per-axis variance of a density query: one training pixel's footprint at the mean camera
    distance (world), or one pixel of NDC's [-1, 1] image plane (forward-facing)."""
    if cameras.ndc:
        return (2.0 / cameras.width) ** 2 / 12.0
    return geometry.footprint_variance(float(cameras.centres.double().norm(dim=-1).mean()), cameras.focal)


@torch.no_grad()
def training_surfaces(
    model, cameras, options: FusionOptions, default_box, device, progress: Optional[Progress] = None
) -> Surfaces:
    """Steps 1-3 of the module docstring."""
    rendered = views.render_views(model, cameras, options.chunk, device, progress)
    lower, upper = model_box(rendered, cameras, default_box)
    march_resolution = max(8, options.resolution // 2)
    densities = torch.from_numpy(
        _density_grid(model, lower, upper, march_resolution, model_variance(cameras), options.chunk, device, progress)
    )
    step = 0.5 * float((upper - lower).max()) / (march_resolution - 1)
    depths, points, colours, point_depths = [], [], [], []
    count = len(rendered.acc)
    for index in range(count):
        rays = _rays(cameras, rendered, index)
        hit = torch.cat(
            [
                fusion.first_hit_distance(
                    densities,
                    lower,
                    upper,
                    part.origins,
                    part.directions,
                    cameras.near,
                    cameras.far,
                    step,
                    options.surface_opacity,
                )
                for part in (rays[s : s + RAYS_PER_MARCH] for s in range(0, len(rays), RAYS_PER_MARCH))
            ]
        )
        ndc = (float(cameras.focals[index]), cameras.widths[index], cameras.heights[index]) if rendered.ndc else None
        depth, surface, world = views.surface_depth(
            hit,
            rendered.acc[index].reshape(-1),
            rays.origins,
            rays.directions,
            rendered.cam2world[index],
            ndc,
            SURFACE_ACC,
            EMPTY_ACC,
        )
        depths.append(depth.reshape(rendered.acc[index].shape))
        points.append(world[surface])
        colours.append(rendered.colours[index].reshape(-1, 3)[surface])
        point_depths.append(depth[surface])
        if progress is not None:
            progress("surface", index + 1, count)
    points = torch.cat(points)
    footprint = float(torch.cat(point_depths).median()) / cameras.focal if len(points) else 0.0
    agreeing, _ = fusion.view_agreement(
        points, depths, None, rendered.cam2world, rendered.pix2cam, TOLERANCE_PIXELS * footprint
    )
    return Surfaces(rendered, depths, points, torch.cat(colours), agreeing, footprint)


def _density_grid(model, lower, upper, resolution, variance, chunk, device, progress) -> np.ndarray:
    """The density on the box's grid (`grid_shape`), (X, Y, Z) float32."""
    shape, _ = grid_shape(lower, upper, resolution)
    axes = [torch.linspace(float(lower[i]), float(upper[i]), shape[i]) for i in range(3)]
    total = shape[0] * shape[1] * shape[2]
    out = np.empty(total, dtype=np.float32)
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        index = torch.arange(start, stop)
        i, j, k = index // (shape[1] * shape[2]), index // shape[2] % shape[1], index % shape[2]
        points = torch.stack([axes[0][i], axes[1][j], axes[2][k]], dim=-1).to(device)
        out[start:stop] = geometry.density_from_points(model, points, variance).float().cpu().numpy()
        if progress is not None:
            progress("density", stop, total)
    return out.reshape(shape)


def pointcloud(surfaces: Surfaces, min_views: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(points (P', 3) float32, colours (P', 3) uint8, floaters dropped)."""
    keep = surfaces.agreeing >= min_views
    colours = (surfaces.colours[keep] * 255 + 0.5).to(torch.uint8).numpy()
    return surfaces.points[keep].float().numpy(), colours, int((~keep).sum())


@torch.no_grad()
def mesh(surfaces: Surfaces, options: FusionOptions, progress: Optional[Progress] = None):
    """Step 4: (vertices (V, 3) float32, colours (V, 3) uint8, faces (F, 3), Pieces, lower, upper)."""
    from mipnerf_cli.errors import MipNerfError

    rendered = surfaces.views
    truncation = TRUNCATION_PIXELS * surfaces.footprint
    kept = surfaces.points[surfaces.agreeing >= options.min_views]
    if len(kept) == 0:
        raise MipNerfError(f"no surface point is seen by {options.min_views} views; lower --min-views or train longer")
    lower = kept.min(dim=0).values - 2 * truncation
    upper = kept.max(dim=0).values + 2 * truncation
    shape, spacing = grid_shape(lower, upper, options.resolution)
    axes = [lower[i] + spacing * torch.arange(shape[i], dtype=torch.float64) for i in range(3)]
    total = shape[0] * shape[1] * shape[2]
    tsdf = np.empty(total, dtype=np.float32)
    weight = np.empty(total, dtype=np.float32)
    for start in range(0, total, VOXELS_PER_FUSION):
        stop = min(start + VOXELS_PER_FUSION, total)
        index = torch.arange(start, stop)
        i, j, k = index // (shape[1] * shape[2]), index // shape[2] % shape[1], index % shape[2]
        points = torch.stack([axes[0][i], axes[1][j], axes[2][k]], dim=-1).float()
        values, seen = fusion.tsdf_from_views(points, surfaces.depths, rendered.cam2world, rendered.pix2cam, truncation)
        tsdf[start:stop], weight[start:stop] = values.numpy(), seen.numpy()
        if progress is not None:
            progress("fusion", stop, total)
    vertices, faces = fusion.mesh_from_tsdf(tsdf.reshape(shape), weight.reshape(shape), lower.numpy(), spacing)
    del tsdf, weight
    if len(faces) == 0:
        raise MipNerfError("the fused depth maps hold no surface; train longer or lower --surface-opacity")
    agreeing, colours = fusion.view_agreement(
        torch.from_numpy(vertices).double(),
        surfaces.depths,
        rendered.colours,
        rendered.cam2world,
        rendered.pix2cam,
        TOLERANCE_PIXELS * surfaces.footprint,
    )
    diagonal = float((upper - lower).norm())
    vertices, faces, keep, found = pieces.drop_floaters(
        vertices, faces, agreeing.numpy(), options.min_size * diagonal, options.min_views
    )
    colours = (colours[torch.from_numpy(keep)].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return vertices, colours, faces, found, lower.float(), upper.float()
