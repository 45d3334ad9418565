"""Mip-mapped tri-plane features (Tri-MipRF's encoding), in plain PyTorch.

A point in the normalised cube [-1, 1]^3 reads three feature planes (xy, xz, yz) of R x R
texels and C channels. A sample is not a point but a cone's cross-section: its footprint,
a sphere of radius r, picks a level of each plane's mip pyramid (level l averages 2^l x 2^l
texels), so the lookup is prefiltered the way mip-NeRF's integrated encoding is. The level
is continuous: bilinear within the two nearest levels, linear between them ("trilinear"
mip-mapping, as texture units do).

The functions follow the order of a lookup: `mip_level_from_footprint` ->
`mip_pyramid_from_planes` -> `plane_coords_from_points` -> `sample_mip_pyramid`.
Shapes: M samples; P = 3 planes; C channels; R texels per side; L levels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "PLANE_AXES",
    "mip_level_from_footprint",
    "mip_pyramid_from_planes",
    "num_mip_levels",
    "plane_coords_from_points",
    "sample_mip_pyramid",
]

# The axes each plane spans: xy, xz, yz.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


def num_mip_levels(resolution: int) -> int:
    """Levels of a pyramid over R x R texels halving down to 1 x 1 (R a power of two): log2(R) + 1."""
    if resolution < 1 or resolution & (resolution - 1):
        raise ValueError(f"plane resolution must be a power of two, not {resolution}")
    return int(math.log2(resolution)) + 1


def mip_level_from_footprint(radius: torch.Tensor, texel_size: float, num_levels: int) -> torch.Tensor:
    """The mip level whose texels are as wide as a sample's footprint.

    radius: (M,) footprint radius of each sample in the planes' units (the cone's radius at
      the sample: ray radius at distance 1 times t). texel_size: width of a level-0 texel in
      the same units (2 / R for planes over [-1, 1]). num_levels: L.
    Returns (M,) levels in [0, L - 1]: log2(2 * radius / texel_size), so a footprint as wide
    as one texel reads level 0 and each doubling of it one level up (Tri-MipRF's rule).
    """
    level = torch.log2(torch.clamp_min(2.0 * radius / texel_size, 1e-12))
    return level.clamp(0.0, float(num_levels - 1))


def mip_pyramid_from_planes(planes: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """The mip pyramid of the planes by 2x2 box filtering (differentiable).

    planes: (P, C, R, R). Returns L tensors, level l of shape (P, C, R / 2^l, R / 2^l);
    level 0 is `planes` itself.
    """
    pyramid = [planes]
    for _ in range(num_levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], kernel_size=2, stride=2))
    return pyramid


def plane_coords_from_points(points: torch.Tensor) -> torch.Tensor:
    """The 2D coordinates of points on each plane, as `grid_sample` takes them.

    points: (M, 3) in [-1, 1]^3. Returns (P, 1, M, 2): for plane (a, b), (x, y) = (p_a, p_b),
    x along the texel columns and y along the rows.
    """
    return torch.stack([points[:, list(axes)] for axes in PLANE_AXES])[:, None]


def sample_mip_pyramid(pyramid: list[torch.Tensor], coords: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Trilinear mip-mapped lookup: bilinear in the two levels around `level`, linear between.

    pyramid: L tensors (P, C, R_l, R_l) (`mip_pyramid_from_planes`); coords: (P, 1, M, 2) in
    [-1, 1] (`plane_coords_from_points`); level: (M,) in [0, L - 1] (0 everywhere: point
    samples of level 0). Returns (M, P * C): each plane's C channels in turn.

    The samples are grouped by the level below theirs (one sort), and each group reads its
    two levels with one `grid_sample` each over all planes: two bilinear reads per sample
    and plane whatever L is, one where the level is a whole number for every sample of a group.
    """
    num_planes, channels = pyramid[0].shape[:2]
    top = len(pyramid) - 1
    lower = torch.floor(level).clamp(0, top)
    frac = (level - lower)[:, None]
    lower = lower.long()
    if lower.numel() == 0:
        return coords.new_zeros(0, num_planes * channels)
    if bool((lower == lower[0]).all()):  # one group (point samples, a constant footprint): no sort
        return _read_two_levels(pyramid, int(lower[0]), coords, frac, num_planes * channels)
    order = torch.argsort(lower, stable=True)
    counts = torch.bincount(lower, minlength=top + 1).tolist()
    coords, frac = coords[:, :, order], frac[order]
    parts, start = [], 0
    for index, count in enumerate(counts):
        if count:
            rows = slice(start, start + count)
            parts.append(_read_two_levels(pyramid, index, coords[:, :, rows], frac[rows], num_planes * channels))
            start += count
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return torch.cat(parts)[inverse]


def _read_two_levels(
    pyramid: list[torch.Tensor], index: int, coords: torch.Tensor, frac: torch.Tensor, width: int
) -> torch.Tensor:
    """(1 - frac) * level `index` + frac * level `index + 1` at `coords` (P, 1, m, 2); frac (m, 1).
    Returns (m, width). The upper level is skipped when it does not exist or frac is 0 throughout."""
    values = _bilinear(pyramid[index], coords, width)
    if index + 1 < len(pyramid) and bool((frac > 0).any()):
        values = torch.lerp(values, _bilinear(pyramid[index + 1], coords, width), frac)
    return values


def _bilinear(texels: torch.Tensor, coords: torch.Tensor, width: int) -> torch.Tensor:
    """Bilinear reads of texels (P, C, r, r) at coords (P, 1, m, 2) -> (m, P * C); edges clamp."""
    values = F.grid_sample(texels, coords, mode="bilinear", padding_mode="border", align_corners=False)
    return values[:, :, 0].permute(2, 0, 1).reshape(-1, width)
