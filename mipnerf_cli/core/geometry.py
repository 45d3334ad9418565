"""Geometry from a trained field: densities on a grid, points at rendered depth, a threshold.

Pure tensor functions for `mipnerf export` (the library, ``mipnerf_cli.export.geometry``, loops over
chunks, reports progress and writes files). A grid point is encoded like one of mip-NeRF's
samples: an isotropic Gaussian whose variance is the model's training footprint there, so
the integrated encoding damps the frequencies the model never saw at that scale.
"""

from __future__ import annotations

import math

import torch


def grid_axes(lower: torch.Tensor, upper: torch.Tensor, resolution: int) -> list[torch.Tensor]:
    """The coordinates of a resolution^3 grid along each axis, corners included.

    lower, upper: (3,) opposite corners of the box.
    Returns three (resolution,) float32 tensors: x, y and z coordinates.
    """
    if resolution < 2:
        raise ValueError(f"a grid needs at least 2 points per axis, got {resolution}")
    return [torch.linspace(float(lower[i]), float(upper[i]), resolution) for i in range(3)]


def grid_points(axes: list[torch.Tensor], start: int, stop: int) -> torch.Tensor:
    """Points ``start..stop-1`` of the grid of `axes`, in C order (x slowest, z fastest).

    axes: three (R,) coordinate tensors (`grid_axes`).
    Returns (stop - start, 3) float32 points; flat index i is (i // R^2, i // R % R, i % R).
    """
    resolution = axes[0].shape[0]
    index = torch.arange(start, stop)
    i, j, k = index // (resolution * resolution), index // resolution % resolution, index % resolution
    return torch.stack([axes[0][i], axes[1][j], axes[2][k]], dim=-1)


def density_from_points(model, points: torch.Tensor, variance: float) -> torch.Tensor:
    """The density `model` (any family: `core.models.RadianceField.density_at`) gives isotropic
    Gaussians centred at `points`.

    points: (N, 3) centres.  variance: per-axis variance of each Gaussian (>= 0).
    Returns (N,) densities >= 0.
    """
    return model.density_at(points, variance)


def footprint_variance(camera_distance: float, focal: float) -> float:
    """Per-axis variance of a sample the model saw at `camera_distance` from a camera of
    `focal` pixels: one pixel's width there, spread uniformly (width^2 / 12)."""
    width = camera_distance / focal
    return width * width / 12.0


def points_from_depth(origins: torch.Tensor, directions: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Where each ray ends: origins + distance * directions.

    origins, directions: (N, 3), directions unnormalised as the model's rays;
    distance: (N,) the rendered distance along those directions.  Returns (N, 3).
    """
    return origins + distance[:, None] * directions


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """The value that best splits `values` into two classes (Otsu's method on a histogram).

    values: (N,) any real numbers (N >= 2).  Returns the bin edge that maximises the
    between-class variance; between min and max of `values`.
    """
    values = values.double()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    counts = torch.histc(values, bins=bins, min=lo, max=hi)
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    weight_low = torch.cumsum(counts, 0)
    weight_high = weight_low[-1] - weight_low
    sum_low = torch.cumsum(counts * centres, 0)
    mean_low = sum_low / weight_low.clamp(min=1)
    mean_high = (sum_low[-1] - sum_low) / weight_high.clamp(min=1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    best = int(torch.argmax(between[:-1]))  # the last edge would put everything in one class
    return lo + (best + 1) * (hi - lo) / bins


def nearest_camera(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the camera centre closest to each point.

    points: (N, 3);  centres: (C, 3).  Returns (N,) int64 indices into `centres`.
    """
    return torch.cdist(points.double(), centres.double()).argmin(dim=1)


def rays_towards(points: torch.Tensor, centres: torch.Tensor, focal: float, window: float) -> dict[str, torch.Tensor]:
    """Rays from camera centres through points, integrated over ``distance +- window``.

    points: (N, 3) targets;  centres: (N, 3) the camera centre of each ray;  focal: pixels
    (sets the cone radius to one pixel's, 2/sqrt(12) / focal per unit distance);
    window: half the length of the integrated interval around each point (> 0).
    Returns float32 tensors: origins, directions (unit), viewdirs (N, 3); radii, near, far (N, 1).
    """
    offset = points.double() - centres.double()
    distance = offset.norm(dim=-1, keepdim=True)
    directions = offset / distance
    return {
        "origins": centres.float(),
        "directions": directions.float(),
        "viewdirs": directions.float(),
        "radii": torch.full_like(distance, 2.0 / math.sqrt(12.0) / focal).float(),
        "near": (distance - window).clamp(min=1e-3).float(),
        "far": (distance + window).float(),
    }
