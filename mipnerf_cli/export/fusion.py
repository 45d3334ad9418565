"""Depth maps rendered from the training views fused into one surface (TSDF fusion).

Curless and Levoy's volumetric fusion (SIGGRAPH 1996), as KinectFusion runs it: every grid
point is projected into every view; where the view's depth map has a surface, the signed
distance along the view's axis ``depth - z`` (positive in front of the surface), truncated
to ``[-truncation, truncation]`` and divided by it, is averaged over the views; points more
than `truncation` behind the surface are left alone (the view cannot see them). A pixel that
rendered empty space (depth +inf) votes "empty" (+1) for every point on its ray, which is
what carves away a floater that only a few views put in front of their surfaces. The
surface is the zero level set, found by marching cubes only in the cubes every corner of
which some view observed.

Pure tensor functions; cameras are the loaders' ``cam2world`` (3, 4) (x right, y up, looking
down -z) and ``pix2cam`` (3, 3) (pixel ``(col + .5, row + .5, 1)`` -> direction with camera
z = -1), so a point's depth is its distance along the view axis, the same quantity a pinhole
ray's rendered distance is (its direction has camera z = -1).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch


def camera_from_world(points: torch.Tensor, cam2world: torch.Tensor) -> torch.Tensor:
    """Points in a camera's frame (x right, y up, looking down -z).

    points: (N, 3);  cam2world: (3, 4).  Returns (N, 3) ``R^T (x - t)``, same dtype as points.
    """
    rotation = cam2world[:3, :3].to(points.dtype)
    return (points - cam2world[:3, 3].to(points.dtype)) @ rotation


def pixels_from_points(points: torch.Tensor, cam2world: torch.Tensor, pix2cam: torch.Tensor):
    """Where points land in a view, and how far along its axis they are.

    points: (N, 3) world;  cam2world: (3, 4);  pix2cam: (3, 3) inverse intrinsics.
    Returns (cols (N,) int64, rows (N,) int64, depth (N,)): the pixel each point falls in
    (its continuous coordinate floored; pixel centres at +.5) and its depth ``-z_camera``
    (> 0 in front of the camera; cols and rows are meaningless where depth <= 0).
    """
    camera = camera_from_world(points, cam2world)
    depth = -camera[:, 2]
    direction = camera / depth.clamp(min=1e-12)[:, None]  # camera z = -1
    uv = direction @ torch.linalg.inv(pix2cam.to(points.dtype)).T  # (col + .5, row + .5, 1)
    return torch.floor(uv[:, 0]).long(), torch.floor(uv[:, 1]).long(), depth


def sample_views(points: torch.Tensor, maps: torch.Tensor, cam2world: torch.Tensor, pix2cam: torch.Tensor):
    """Each point's pixel value in a view and its depth there.

    points: (N, 3);  maps: (H, W, ...) per-pixel values;  cam2world (3, 4), pix2cam (3, 3).
    Returns (values (N, ...), depth (N,), inside (N,) bool): ``values`` is the map at the
    pixel the point falls in (zeros where not ``inside``, i.e. behind the camera or outside
    the image).
    """
    height, width = maps.shape[:2]
    cols, rows, depth = pixels_from_points(points, cam2world, pix2cam)
    inside = (depth > 0) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = torch.where(inside, rows * width + cols, torch.zeros_like(cols))
    values = maps.reshape(height * width, *maps.shape[2:])[flat]
    return values, depth, inside


def tsdf_from_views(
    points: torch.Tensor,
    depths: Sequence[torch.Tensor],
    cam2world: torch.Tensor,
    pix2cam: torch.Tensor,
    truncation: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The truncated signed distance at `points`, averaged over the views that observe them.

    points: (N, 3);  depths: V depth maps (H, W) along each view's axis, +inf where the pixel
    rendered empty space, nan where it is unknown (skipped);  cam2world: (V, 3, 4);
    pix2cam: (V, 3, 3);  truncation: > 0, scene units.
    Returns (tsdf (N,) in [-1, 1] (1 where no view observed the point), weight (N,) the
    number of views that did).
    """
    total = torch.zeros(points.shape[0], dtype=points.dtype)
    weight = torch.zeros(points.shape[0], dtype=points.dtype)
    for view, depth_map in enumerate(depths):
        surface, depth, inside = sample_views(points, depth_map.to(points.dtype), cam2world[view], pix2cam[view])
        signed = (surface - depth) / truncation  # +inf for empty pixels
        seen = inside & ~torch.isnan(signed) & (signed >= -1)
        total += torch.where(seen, signed.clamp(max=1), torch.zeros_like(signed))
        weight += seen.to(points.dtype)
    tsdf = torch.where(weight > 0, total / weight.clamp(min=1), torch.ones_like(total))
    return tsdf, weight


def view_agreement(
    points: torch.Tensor,
    depths: Sequence[torch.Tensor],
    colours: Optional[Sequence[torch.Tensor]],
    cam2world: torch.Tensor,
    pix2cam: torch.Tensor,
    tolerance: float,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """How many views render a surface at each point, and the colour they render there.

    points: (N, 3);  depths: V maps (H, W) as in `tsdf_from_views`;  colours: V maps
    (H, W, 3) float in [0, 1], or None;  tolerance: the most ``|depth map - depth|`` a view
    may differ by and still agree.
    Returns (count (N,) int64 views that agree, colour (N, 3) their mean colour (zeros where
    none agrees), or None without `colours`).
    """
    count = torch.zeros(points.shape[0], dtype=torch.int64)
    colour_sum = torch.zeros(points.shape[0], 3, dtype=points.dtype) if colours is not None else None
    for view, depth_map in enumerate(depths):
        surface, depth, inside = sample_views(points, depth_map.to(points.dtype), cam2world[view], pix2cam[view])
        agree = inside & ((surface - depth).abs() <= tolerance)
        count += agree.long()
        if colours is not None:
            rgb, _, _ = sample_views(points, colours[view].to(points.dtype), cam2world[view], pix2cam[view])
            colour_sum += torch.where(agree[:, None], rgb, torch.zeros_like(rgb))
    if colour_sum is None:
        return count, None
    return count, colour_sum / count.clamp(min=1)[:, None].to(points.dtype)


def observed_cubes(weight: np.ndarray) -> np.ndarray:
    """Marching cubes' mask: the cubes all eight corners of which some view observed.

    weight: (X, Y, Z) views per grid point.  Returns (X, Y, Z) bool; scikit-image reads the
    cube with corners i-1..i, j-1..j, k-1..k at index (i, j, k) (False on the near faces).
    """
    seen = weight > 0
    x, y, z = (size - 1 for size in seen.shape)
    cubes = np.zeros_like(seen)
    inner = np.ones((x, y, z), dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                inner &= seen[dx : dx + x, dy : dy + y, dz : dz + z]
    cubes[1:, 1:, 1:] = inner
    return cubes


def mesh_from_tsdf(tsdf: np.ndarray, weight: np.ndarray, lower: np.ndarray, spacing: float):
    """The zero level set of a fused TSDF grid, in the cubes the views observed.

    tsdf, weight: (X, Y, Z) from `tsdf_from_views` on the grid ``lower + spacing * (i, j, k)``.
    Returns (vertices (V, 3) float32 world, faces (F, 3) int64); both empty when there is no
    surface.
    """
    from skimage.measure import marching_cubes

    mask = observed_cubes(weight)
    values = tsdf[mask]
    if values.size == 0 or not (values.min() < 0 < values.max()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    vertices, faces, _, _ = marching_cubes(tsdf, level=0.0, spacing=(spacing,) * 3, mask=mask)
    return (vertices + lower[None, :]).astype(np.float32), faces.astype(np.int64)


def world_from_ndc(points: torch.Tensor, focal: float, width: int, height: int, near: float = 1.0) -> torch.Tensor:
    """Points in normalized device coordinates back in the forward-facing world frame
    (the inverse of ``data.formats.llff.ndc_rays``' projection).

    points: (N, 3) NDC, z in [-1, 1) (z = 1 is infinitely far);  focal: pixels;  width,
    height: the image size NDC was made for;  near: the plane the rays were moved to.
    Returns (N, 3): z = 2 near / (z_ndc - 1), x = -x_ndc z / (2 focal / W), y likewise.
    """
    z = 2.0 * near / (points[:, 2] - 1.0)
    x = -points[:, 0] * z / (2.0 * focal / width)
    y = -points[:, 1] * z / (2.0 * focal / height)
    return torch.stack([x, y, z], dim=-1)


def first_hit_distance(
    densities: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: float,
    far: float,
    step: float,
    opacity: float,
) -> torch.Tensor:
    """Where the opacity accumulated along each ray through a density grid first reaches `opacity`.

    densities: (X, Y, Z) float32 on the grid from `lower` to `upper` ((3,) corners; trilinear
    in between, 0 outside);  origins, directions: (N, 3) rays (unnormalised);  near, far: the
    rays' parameter range;  step: sample spacing in scene units;  opacity: in (0, 1).
    Returns (N,) the ray parameter t of the first sample whose accumulated opacity
    ``1 - exp(-sum sigma * delta)`` reaches `opacity`; +inf where none does.
    """
    import torch.nn.functional as F

    longest = float(directions.norm(dim=-1).max()) if directions.numel() else 1.0
    count = max(2, int(math.ceil((far - near) * longest / step)))
    t = torch.linspace(near, far, count, dtype=torch.float32)
    points = origins.float()[:, None, :] + t[None, :, None] * directions.float()[:, None, :]  # (N, S, 3)
    scale = (upper - lower).float().clamp(min=1e-12)
    coords = (points - lower.float()) / scale * 2 - 1  # grid_sample's (x, y, z) in [-1, 1]
    volume = densities.float().permute(2, 1, 0)[None, None]  # (1, 1, Z, Y, X)
    sigma = F.grid_sample(volume, coords[None, :, :, None, :], align_corners=True, padding_mode="zeros")
    sigma = sigma.reshape(points.shape[:2]).clamp(min=0)
    delta = (far - near) / (count - 1) * directions.float().norm(dim=-1, keepdim=True)
    reached = (1 - torch.exp(-torch.cumsum(sigma * delta, dim=1))) >= opacity
    first = reached.float().argmax(dim=1)
    return torch.where(reached.any(dim=1), t[first], torch.full_like(t[first], math.inf))
