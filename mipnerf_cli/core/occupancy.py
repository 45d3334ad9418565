"""Empty-space skipping with an occupancy grid (nerfacc's idea, plain PyTorch, any device).

The scene's bounding cube [-h, h]^3 is split into G^3 cells. Each cell keeps a running
maximum of the opacity the model gives one marching step there (decayed at every update);
a cell is occupied when that value passes a threshold, and rays are marched in fixed steps
of which only those in occupied cells reach the model. The grid is refreshed every few
training steps from densities at random points, drawn from a generator seeded by the step,
so it is a pure function of (weights, step) and a resumed run rebuilds the same grid.

In the order of a pass: `ray_aabb_intersect` -> `march_along_rays` -> `cell_index_from_points`
(look the samples' cells up); and for an update: `cells_to_update` -> `points_in_cells` ->
`occupancy_ema_update` -> `occupied_from_ema`. Shapes: N rays, S steps per ray, G cells per side.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

__all__ = [
    "cell_index_from_points",
    "cells_to_update",
    "march_along_rays",
    "occupancy_ema_update",
    "occupied_from_ema",
    "points_in_cells",
    "ray_aabb_intersect",
    "update_generator",
]


def ray_aabb_intersect(
    origins: torch.Tensor, directions: torch.Tensor, half: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where rays enter and leave the cube [-half, half]^3 (slab method).

    origins, directions: (N, 3) (directions need not be unit). Returns t_enter, t_exit: (N,)
    in units of `directions`; t_exit <= t_enter for a ray that misses the cube.
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t_a = (-half - origins) / safe
    t_b = (half - origins) / safe
    t_enter = torch.minimum(t_a, t_b).amax(dim=-1)
    t_exit = torch.maximum(t_a, t_b).amin(dim=-1)
    return t_enter, t_exit


def march_along_rays(
    t_start: torch.Tensor, t_end: torch.Tensor, step: torch.Tensor, num_steps: int, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-step sample positions: t_i = t_start + (i + offset) * step, i < num_steps.

    t_start, t_end: (N,); step: (N,) > 0; offset: (N,) in [0, 1) (0.5: the middle of each step;
    random: stratified jitter). Returns t: (N, S) sample positions and inside: (N, S) bool,
    whether t_i < t_end (samples past the end are padding).
    """
    index = torch.arange(num_steps, device=t_start.device, dtype=t_start.dtype)
    t = t_start[:, None] + (index[None, :] + offset[:, None]) * step[:, None]
    return t, t < t_end[:, None]


def cell_index_from_points(points: torch.Tensor, half: float, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat index of the grid cell holding each point, and whether it is inside the cube.

    points: (..., 3). Returns index (...,) long in [0, G^3) (x slowest, z fastest; clamped for
    points outside) and inside (...,) bool.
    """
    cell = torch.floor((points + half) / (2 * half) * resolution).long()
    inside = ((cell >= 0) & (cell < resolution)).all(dim=-1)
    cell = cell.clamp(0, resolution - 1)
    return (cell[..., 0] * resolution + cell[..., 1]) * resolution + cell[..., 2], inside


def update_generator(step: int, device: torch.device | str) -> torch.Generator:
    """The random source of the grid update at `step`: a pure function of the step."""
    digest = hashlib.sha256(f"occupancy:{step}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return generator


def cells_to_update(occupied: torch.Tensor, all_cells: bool, generator: torch.Generator) -> torch.Tensor:
    """The cells an update evaluates (nerfacc's choice): every cell while warming up, else a
    random quarter of them plus every occupied one.

    occupied: (G^3,) bool. Returns (K,) long cell indices, sorted, without repeats.
    """
    count = occupied.numel()
    if all_cells:
        return torch.arange(count, device=occupied.device)
    pick = torch.randint(count, (count // 4,), generator=generator, device=occupied.device)
    chosen = occupied.clone()
    chosen[pick] = True
    return torch.nonzero(chosen).squeeze(1)


def points_in_cells(cells: torch.Tensor, half: float, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random point in each cell. cells: (K,) flat indices. Returns (K, 3)."""
    z = cells % resolution
    y = (cells // resolution) % resolution
    x = cells // (resolution * resolution)
    corner = torch.stack([x, y, z], dim=-1).float()
    jitter = torch.rand(corner.shape, generator=generator, device=cells.device)
    return (corner + jitter) / resolution * (2 * half) - half


def occupancy_ema_update(ema: torch.Tensor, cells: torch.Tensor, opacity: torch.Tensor, decay: float) -> torch.Tensor:
    """The new running values: every cell decays, evaluated cells take max(decayed, opacity).

    ema: (G^3,); cells: (K,); opacity: (K,) the step opacity 1 - exp(-density * step) found
    in each. Returns (G^3,).
    """
    new = ema * decay
    return new.index_put((cells,), torch.maximum(new[cells], opacity))


def occupied_from_ema(ema: torch.Tensor, threshold: float, resolution: int) -> torch.Tensor:
    """Occupied cells: running opacity above min(threshold, its mean), grown by one cell in
    every direction (so a footprint-blurred density next to a surface is not skipped).

    ema: (G^3,). Returns (G^3,) bool.
    """
    cutoff = min(threshold, float(ema.mean()))
    occupied = (ema > cutoff).float().view(1, 1, resolution, resolution, resolution)
    return F.max_pool3d(occupied, kernel_size=3, stride=1, padding=1).view(-1) > 0
