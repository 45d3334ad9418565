"""A grid-based, cone-traced model (`--config fast`): Tri-MipRF's mip-mapped tri-planes, a
small MLP with view-dependent colour, and an occupancy grid that skips empty space.

Each ray is marched in fixed steps through the scene's bounding cube; steps in cells the
occupancy grid (core/occupancy.py) marks empty never reach the network. A sample's cone
radius (the ray's radius at distance 1 times t, mip-NeRF's footprint) picks the mip level of
the planes it reads (core/triplane.py), so the features are prefiltered over the pixel's
footprint as mip-NeRF's integrated encoding is; `prefilter=False` reads level 0 everywhere
(point samples: the ablation, like the paper model's `disable_integration`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mipnerf_cli.core import mip, occupancy, triplane
from mipnerf_cli.core.models.base import LevelOutput, Noise, RadianceField
from mipnerf_cli.core.models.trimip_config import TriMipConfig
from mipnerf_cli.core.rays import RayBundle

__all__ = ["TriMipConfig", "TriMipRF"]


def _linear(in_features: int, out_features: int, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class TriMipRF(RadianceField):
    """Mip-mapped tri-planes + a small MLP + an occupancy grid; one sampling level."""

    family = "trimip"
    config_type = TriMipConfig
    # Measured (BENCHMARKS.md): rendering 8192 lego rays in core/fast.py's blocks of 32 rays
    # takes 5.5x the CPU time of one pass (2.41 s vs 0.42 s): per-block overhead of the packed
    # samples and grid lookups. One pass over the batch it is.
    supports_fast_path = False

    def __init__(self, config: TriMipConfig = TriMipConfig(), generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        res, ch = config.plane_resolution, config.plane_features
        planes = torch.rand(3, ch, res, res, generator=generator) * (2 * config.init_scale) - config.init_scale
        self.planes = nn.Parameter(planes)
        self.density_net = nn.Sequential(
            _linear(3 * ch, config.hidden, generator),
            nn.ReLU(),
            _linear(config.hidden, 1 + config.geo_features, generator),
        )
        view = 3 + 6 * config.deg_view
        self.colour_net = nn.Sequential(
            _linear(config.geo_features + view, config.hidden, generator),
            nn.ReLU(),
            _linear(config.hidden, config.hidden, generator),
            nn.ReLU(),
            _linear(config.hidden, 3, generator),
        )
        cells = config.occupancy_resolution**3
        # The grid is state, not weights: in the state_dict (checkpoints, resume), not trained.
        self.register_buffer("occupancy_ema", torch.zeros(cells))
        self.register_buffer("occupied", torch.ones(cells, dtype=torch.bool))

    # ------------------------------------------------------------------ the field
    def _features(self, points: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Prefiltered plane features (M, 3C) of points (M, 3) in world units at mip `level` (M,)."""
        cfg = self.config
        levels = triplane.num_mip_levels(cfg.plane_resolution)
        top = int(level.max()) + 2 if level.numel() else 1
        pyramid = triplane.mip_pyramid_from_planes(self.planes, min(levels, top))
        coords = triplane.plane_coords_from_points(points / cfg.bound)
        return triplane.sample_mip_pyramid(pyramid, coords, level.clamp(max=len(pyramid) - 1))

    def _level(self, radius: torch.Tensor) -> torch.Tensor:
        """Mip levels (M,) of footprints of radius (M,) (world units); 0 without prefiltering."""
        cfg = self.config
        if not cfg.prefilter:
            return torch.zeros_like(radius)
        return triplane.mip_level_from_footprint(radius, cfg.texel_size, triplane.num_mip_levels(cfg.plane_resolution))

    def _density_and_geo(self, points: torch.Tensor, radius: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """density (M,) >= 0 and geometry features (M, geo) at points (M, 3) with footprints radius (M,)."""
        out = self.density_net(self._features(points, self._level(radius)))
        raw = (out[:, 0] + self.config.density_bias).float()
        return torch.exp(raw.clamp(max=15.0)), out[:, 1:]

    def density_at(self, points: torch.Tensor, variance: float) -> torch.Tensor:
        """Densities (N,) >= 0 of isotropic Gaussians of per-axis `variance` centred at points (N, 3).

        The footprint radius is 2 standard deviations: a ray's `radii` is its pixel's width
        times 2 / sqrt(12), i.e. twice the standard deviation of the pixel's extent.
        """
        radius = torch.full(points.shape[:1], 2.0 * math.sqrt(max(variance, 0.0)), device=points.device)
        density, _ = self._density_and_geo(points, radius)
        inside = (points.abs() <= self.config.bound).all(dim=-1)
        return torch.where(inside, density, torch.zeros_like(density))

    # ------------------------------------------------------------------ rendering
    def draw_noise(
        self,
        batch_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Noise:
        """The randomized pass's numbers: "offset" (*batch_shape,), each ray's stratified
        jitter of its marching steps, U[0, 1)."""
        return [{"offset": torch.rand(batch_shape, generator=generator, dtype=dtype, device=device)}]

    def forward(
        self,
        rays: RayBundle,
        randomized: bool,
        white_bkgd: bool,
        generator: torch.Generator | None = None,
        noise: Noise | None = None,
        last_level_only: bool = False,
    ) -> list[LevelOutput]:
        """Render N rays (one level). Randomized: each ray's steps start at a random offset
        (else in the middle of each step). Returns [LevelOutput(rgb (N, 3), distance (N,), acc (N,))]."""
        cfg = self.config
        num_rays = rays.origins.shape[0]
        if randomized:
            if noise is None:
                noise = self.draw_noise((num_rays,), generator, rays.origins.device, rays.origins.dtype)
            offset = noise[0]["offset"]
        else:
            offset = torch.full((num_rays,), 0.5, device=rays.origins.device, dtype=rays.origins.dtype)
        near = rays.near[:, 0]
        t, points, keep = self._samples(rays, offset)
        ray_id, step_id = torch.nonzero(keep, as_tuple=True)
        kept_t = t[ray_id, step_id]
        radius = rays.radii[ray_id, 0] * kept_t
        density, geo = self._density_and_geo(points[ray_id, step_id], radius)
        view = mip.pos_enc(rays.viewdirs, min_deg=0, max_deg=cfg.deg_view, append_identity=True)
        raw_rgb = self.colour_net(torch.cat([geo, view[ray_id]], dim=-1)).float()
        rgb = torch.sigmoid(raw_rgb) * (1 + 2 * cfg.rgb_padding) - cfg.rgb_padding
        comp_rgb, distance, acc = _composite(
            rgb, density * cfg.step_size, kept_t, ray_id, step_id, keep.shape, near, white_bkgd
        )
        return [LevelOutput(comp_rgb, distance, acc)]

    def _samples(self, rays: RayBundle, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The marching steps of N rays starting at `offset` (N,) of a step: t (N, S), points
        (N, S, 3) and keep (N, S), the steps that reach the network (inside the cube and the
        near/far bounds, in occupied cells, not behind an opaque surface)."""
        cfg = self.config
        t_enter, t_exit = occupancy.ray_aabb_intersect(rays.origins, rays.directions, cfg.bound)
        t_start = torch.maximum(rays.near[:, 0], t_enter)
        t_end = torch.minimum(rays.far[:, 0], t_exit)
        # Steps in units of t (directions are not unit): the world step over |d|.
        dt = cfg.step_size / rays.directions.norm(dim=-1)
        t, keep = occupancy.march_along_rays(t_start, t_end, dt, cfg.march_steps, offset)
        points = rays.origins[:, None, :] + t[..., None] * rays.directions[:, None, :]
        if cfg.occupancy_resolution:
            cell, inside = occupancy.cell_index_from_points(points, cfg.bound, cfg.occupancy_resolution)
            keep = keep & inside & self.occupied[cell]
        if cfg.early_stop > 0:
            keep = self._visible(keep, t, points, rays.radii[:, 0], cfg.early_stop)
        return t, points, keep

    @torch.no_grad()
    def samples_per_ray(self, rays: RayBundle) -> torch.Tensor:
        """How many steps of each of N rays reach the network in a deterministic pass: (N,) long."""
        offset = torch.full((len(rays),), 0.5, device=rays.origins.device, dtype=rays.origins.dtype)
        return self._samples(rays, offset)[2].sum(dim=-1)

    @torch.no_grad()
    def _visible(
        self, keep: torch.Tensor, t: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, threshold: float
    ) -> torch.Tensor:
        """`keep` (N, S) without the steps that light reaches with transmittance below
        `threshold` (behind opaque surfaces), from densities of a gradient-free pass."""
        ray_id, step_id = torch.nonzero(keep, as_tuple=True)
        density, _ = self._density_and_geo(points[ray_id, step_id], radii[ray_id] * t[ray_id, step_id])
        dense = torch.zeros(keep.shape, device=keep.device, dtype=density.dtype)
        dense[ray_id, step_id] = density * self.config.step_size
        transmittance = torch.exp(-(torch.cumsum(dense, dim=-1) - dense))
        return keep & (transmittance > threshold)

    # ------------------------------------------------------------------ occupancy grid
    @torch.no_grad()
    def before_step(self, step: int) -> None:
        """Refresh the occupancy grid at steps 1, 1 + interval, ... (a pure function of the
        weights and `step`: resume and every rank rebuild the same grid)."""
        cfg = self.config
        if not cfg.occupancy_resolution or (step - 1) % cfg.occupancy_interval:
            return
        self.update_occupancy(step)

    @torch.no_grad()
    def update_occupancy(self, step: int) -> None:
        """Evaluate the chosen cells at a random point each and update the running opacity."""
        cfg = self.config
        res = cfg.occupancy_resolution
        generator = occupancy.update_generator(step, self.planes.device)
        cells = occupancy.cells_to_update(self.occupied, step <= cfg.occupancy_warmup, generator)
        points = occupancy.points_in_cells(cells, cfg.bound, res, generator)
        # The cell's own width as footprint: the density a cell-sized cone would see there.
        radius = torch.full(cells.shape, cfg.bound / res, device=points.device)
        opacity = torch.cat(
            [
                1 - torch.exp(-self._density_and_geo(chunk, r)[0] * cfg.step_size)
                for chunk, r in zip(points.split(65536), radius.split(65536))
            ]
        )
        self.occupancy_ema.copy_(
            occupancy.occupancy_ema_update(self.occupancy_ema, cells, opacity, cfg.occupancy_decay)
        )
        self.occupied.copy_(occupancy.occupied_from_ema(self.occupancy_ema, cfg.occupancy_threshold, res))

    def clear_occupancy(self) -> None:
        """Mark every cell occupied (skip nothing), e.g. to compare renders with and without skipping."""
        self.occupied.fill_(True)


def _composite(
    rgb: torch.Tensor,
    opacity_depth: torch.Tensor,
    t: torch.Tensor,
    ray_id: torch.Tensor,
    step_id: torch.Tensor,
    shape: tuple[int, int],
    near: torch.Tensor,
    white_bkgd: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite packed samples (ray-major, in marching order) back to their rays.

    rgb: (K, 3); opacity_depth: (K,) density times step length; t: (K,); ray_id, step_id: (K,)
    the sample's ray and step; shape: (N, S). Skipped steps count as empty. Returns rgb (N, 3),
    distance (N,) (the expected t of termination; `near` where nothing is hit), acc (N,).
    """
    num_rays, num_steps = shape
    flat = ray_id * num_steps + step_id
    dense = opacity_depth.new_zeros(num_rays * num_steps).index_put((flat,), opacity_depth).view(num_rays, num_steps)
    # Transmittance before each step: exp(-sum of the earlier steps' density * length).
    before = torch.cumsum(dense, dim=-1) - dense
    weights_dense = (1 - torch.exp(-dense)) * torch.exp(-before)
    weights = weights_dense.view(-1)[flat]
    comp = rgb.new_zeros(num_rays, 3).index_add(0, ray_id, weights[:, None] * rgb)
    acc = weights_dense.sum(dim=-1)
    depth = t.new_zeros(num_rays).index_add(0, ray_id, weights * t)
    distance = torch.where(acc > 0, depth / acc.clamp_min(1e-10), near)
    if white_bkgd:
        comp = comp + (1 - acc[:, None])
    return comp, distance, acc
