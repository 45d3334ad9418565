"""The grid-based model (core/triplane.py, core/occupancy.py, core/models/trimip.py):
the footprint -> mip level rule, prefiltered lookups against supersampling, the occupancy
grid against rendering without it, determinism and resume."""

from __future__ import annotations

import math

import pytest
import torch
from golden import GOLDEN

from mipnerf_cli.core import models, occupancy, triplane
from mipnerf_cli.core.losses import mipnerf_loss
from mipnerf_cli.core.models.trimip import TriMipConfig, TriMipRF
from mipnerf_cli.core.rays import RayBundle

TINY = TriMipConfig(
    plane_resolution=16,
    plane_features=4,
    hidden=16,
    geo_features=7,
    deg_view=2,
    march_steps=48,
    occupancy_resolution=16,
    occupancy_interval=4,
    occupancy_warmup=8,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- mip levels


def test_footprint_picks_the_level_of_its_width():
    texel = 2.0 / 64  # planes of 64 texels over [-1, 1]
    radius = torch.tensor([texel / 2, texel, 2 * texel, 4 * texel, 3 * texel / 2, texel / 8, 1e3])
    level = triplane.mip_level_from_footprint(radius, texel, num_levels=7)
    # diameter 1 texel -> 0; 2 -> 1; 4 -> 2; 8 -> 3; 3 -> log2(3); smaller than a texel -> 0; huge -> L-1
    expected = torch.tensor([0.0, 1.0, 2.0, 3.0, math.log2(3.0), 0.0, 6.0])
    torch.testing.assert_close(level, expected)


def test_levels_of_a_pyramid():
    assert triplane.num_mip_levels(1) == 1
    assert triplane.num_mip_levels(128) == 8
    with pytest.raises(ValueError, match="power of two"):
        triplane.num_mip_levels(96)
    planes = torch.arange(3 * 2 * 4 * 4, dtype=torch.float32).view(3, 2, 4, 4)
    pyramid = triplane.mip_pyramid_from_planes(planes, 3)
    assert [tuple(p.shape) for p in pyramid] == [(3, 2, 4, 4), (3, 2, 2, 2), (3, 2, 1, 1)]
    assert float(pyramid[2][0, 0, 0, 0]) == float(planes[0, 0].mean())
    assert float(pyramid[1][1, 1, 0, 1]) == float(planes[1, 1, :2, 2:].mean())


def test_plane_coords_follow_the_axes():
    points = torch.tensor([[0.1, 0.2, 0.3]])
    coords = triplane.plane_coords_from_points(points)
    assert coords.shape == (3, 1, 1, 2)
    torch.testing.assert_close(coords[:, 0, 0], torch.tensor([[0.1, 0.2], [0.1, 0.3], [0.2, 0.3]]))


def _supersampled(planes: torch.Tensor, points: torch.Tensor, half_width: float, n: int = 16) -> torch.Tensor:
    """Brute force: the mean of level-0 bilinear reads over an n x n grid covering the square
    footprint of side 2 * half_width around each point, on every plane."""
    offsets = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
    du, dv = torch.meshgrid(offsets * half_width, offsets * half_width, indexing="ij")
    total = 0
    for u, v in zip(du.reshape(-1), dv.reshape(-1)):
        # The same 2D offset on each plane: shift the two coordinates that plane reads.
        coords = triplane.plane_coords_from_points(points).clone()
        coords[..., 0] += u
        coords[..., 1] += v
        total = total + triplane.sample_mip_pyramid([planes], coords, torch.zeros(points.shape[0]))
    return total / (n * n)


def test_prefiltered_lookup_matches_supersampling():
    res, level = 64, 3  # footprint of 8 texels
    texel = 2.0 / res
    # A checkerboard of 2-texel period (all detail above the footprint's band) plus a smooth ramp.
    i = torch.arange(res)
    checker = ((i[:, None] + i[None, :]) % 2).float()
    ramp = torch.linspace(-1, 1, res)[None, :].expand(res, res)
    planes = torch.stack([checker, ramp]).expand(3, 2, res, res).contiguous()
    pyramid = triplane.mip_pyramid_from_planes(planes, triplane.num_mip_levels(res))
    # Sample at level-0 texel centres at least 8 texels from the border (no edge clamping).
    g = torch.Generator().manual_seed(0)
    texels = torch.randint(8, res - 8, (20, 3), generator=g).float()
    points = (texels + 0.5) * texel - 1
    radius = torch.full((20,), 4 * texel)  # diameter 8 texels -> level 3
    lookup_level = triplane.mip_level_from_footprint(radius, texel, len(pyramid))
    assert torch.allclose(lookup_level, torch.full((20,), float(level)))
    coords = triplane.plane_coords_from_points(points)
    prefiltered = triplane.sample_mip_pyramid(pyramid, coords, lookup_level)
    point = triplane.sample_mip_pyramid(pyramid, coords, torch.zeros(20))
    reference = _supersampled(planes, points, half_width=4 * texel)
    # Checkerboard channels (0 of each plane): the reference is its mean, 0.5.
    checker_cols = [0, 2, 4]
    torch.testing.assert_close(reference[:, checker_cols], torch.full((20, 3), 0.5), atol=0.02, rtol=0)
    assert float((prefiltered - reference).abs().max()) < 0.03
    assert float((point[:, checker_cols] - reference[:, checker_cols]).abs().min()) > 0.4  # aliased: 0 or 1


def test_fractional_levels_blend_the_two_nearest():
    planes = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    pyramid = triplane.mip_pyramid_from_planes(planes, 4)
    coords = triplane.plane_coords_from_points(torch.tensor([[0.3, -0.2, 0.6], [0.1, 0.1, -0.9]]))
    at = {lvl: triplane.sample_mip_pyramid(pyramid, coords, torch.full((2,), float(lvl))) for lvl in (1, 2)}
    mixed = triplane.sample_mip_pyramid(pyramid, coords, torch.tensor([1.25, 1.25]))
    torch.testing.assert_close(mixed, 0.75 * at[1] + 0.25 * at[2])
    # Samples at different levels in one call agree with separate calls (the grouping is invisible).
    both = triplane.sample_mip_pyramid(pyramid, coords, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(both, torch.stack([at[1][0], at[2][1]]))


# ----------------------------------------------------------------------------- marching, grid


def test_ray_box_intersection_and_marching():
    origins = torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 5.0, 0.0]])
    directions = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    t_enter, t_exit = occupancy.ray_aabb_intersect(origins, directions, 1.0)
    torch.testing.assert_close(t_enter[:1], torch.tensor([1.0]))
    torch.testing.assert_close(t_exit[:1], torch.tensor([2.0]))
    assert bool(t_exit[1] <= t_enter[1])  # misses
    t, inside = occupancy.march_along_rays(
        torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0.25]), 6, torch.tensor([0.5])
    )
    torch.testing.assert_close(t[0], torch.tensor([1.125, 1.375, 1.625, 1.875, 2.125, 2.375]))
    assert inside[0].tolist() == [True] * 4 + [False] * 2


def test_cells_and_their_points():
    index, inside = occupancy.cell_index_from_points(
        torch.tensor([[-0.99, -0.99, 0.99], [0.0, 0.0, 0.0], [2.0, 0, 0]]), 1.0, 4
    )
    assert index.tolist()[:2] == [3, 2 * 16 + 2 * 4 + 2]
    assert inside.tolist() == [True, True, False]
    cells = torch.arange(64)
    points = occupancy.points_in_cells(cells, 1.0, 4, torch.Generator().manual_seed(0))
    back, _ = occupancy.cell_index_from_points(points, 1.0, 4)
    assert back.tolist() == cells.tolist()


def test_occupancy_update_rule():
    ema = torch.tensor([0.5, 0.0, 0.2, 0.0])
    new = occupancy.occupancy_ema_update(ema, torch.tensor([1, 2]), torch.tensor([0.3, 0.1]), 0.5)
    torch.testing.assert_close(new, torch.tensor([0.25, 0.3, 0.1, 0.0]))
    grid = torch.zeros(27)
    grid[13] = 1.0  # the centre of a 3^3 grid: grown by one cell, all 27 are occupied
    assert occupancy.occupied_from_ema(grid, 0.01, 3).all()
    big = torch.zeros(5**3)
    big[0] = 1.0
    occupied = occupancy.occupied_from_ema(big, 0.01, 5)
    assert int(occupied.sum()) == 8  # the corner cell and its 7 neighbours


# ----------------------------------------------------------------------------- the model


def _scene():
    from mipnerf_cli.data import load_scene

    return load_scene(GOLDEN / "convert" / "output" / "tiny", "train", multiscale=True, white_bkgd=True)


def _train(model: TriMipRF, steps: range, optimizer, scene, batch: int = 256) -> None:
    from mipnerf_cli.data import sample_batch
    from mipnerf_cli.data.sampler import step_generator

    for step in steps:
        model.before_step(step)
        rays, pixels = scene.pixel_rays(sample_batch(0, step, scene.num_pixels, batch))
        outputs = model(rays, randomized=True, white_bkgd=True, generator=step_generator(0, step, "noise"))
        loss, _ = mipnerf_loss(outputs, pixels, rays.lossmult, coarse_loss_mult=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _fresh(config: TriMipConfig = TINY) -> tuple[TriMipRF, torch.optim.Optimizer]:
    model = models.build("trimip", {**vars(config)}, generator=torch.Generator().manual_seed(0))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-15)


def test_registered_and_rebuilt_from_its_config():
    assert models.FAMILIES["trimip"] is TriMipRF
    model, _ = _fresh()
    again = models.build(model.family, model.config_dict())
    assert again.config == model.config
    assert set(again.state_dict()) == set(model.state_dict())
    with pytest.raises(ValueError, match="unknown trimip model settings: nope"):
        models.build("trimip", {"nope": 1})


def test_forward_shapes_and_density_at():
    model, _ = _fresh()
    scene = _scene()
    rays, _ = scene.pixel_rays(torch.arange(0, scene.num_pixels, 37))
    (level,) = model(rays, randomized=False, white_bkgd=True)
    n = len(rays)
    assert level.rgb.shape == (n, 3) and level.distance.shape == (n,) and level.acc.shape == (n,)
    assert bool(((level.acc >= 0) & (level.acc <= 1 + 1e-6)).all())
    assert bool((level.distance >= rays.near[:, 0] - 1e-5).all() & (level.distance <= rays.far[:, 0] + 1e-5).all())
    last = model.render_last_level(rays, white_bkgd=True)
    torch.testing.assert_close(last.rgb, level.rgb)
    density = model.density_at(torch.tensor([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0]]), 1e-4)
    assert density.shape == (2,) and float(density[0]) > 0 and float(density[1]) == 0.0


def _camera_rays(side: int) -> RayBundle:
    """side x side rays of a pinhole camera at (0, 0, 4) looking at the origin (field of view ~33 deg)."""
    u = torch.linspace(-0.3, 0.3, side)
    x, y = torch.meshgrid(u, u, indexing="xy")
    directions = torch.stack([x, y, -torch.ones_like(x)], dim=-1).reshape(-1, 3)
    n = directions.shape[0]
    return RayBundle(
        origins=torch.tensor([0.0, 0.0, 4.0]).expand(n, 3),
        directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True),
        radii=torch.full((n, 1), 0.6 / side * 2 / math.sqrt(12)),
        near=torch.full((n, 1), 2.0),
        far=torch.full((n, 1), 6.0),
        lossmult=torch.ones(n, 1),
    )


def _fit_ball(model: TriMipRF, steps: int = 150) -> None:
    """Train the density to an off-centre ball of radius 0.6 (density 30 inside, ~0 outside) by regression."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        points = torch.rand(2048, 3, generator=g) * 3 - 1.5
        target = torch.where((points - torch.tensor([0.35, -0.2, 0.1])).norm(dim=-1) < 0.6, 30.0, 1e-3)
        loss = (torch.log(model.density_at(points, 1e-5) + 1e-3) - torch.log(target + 1e-3)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_skipping_never_drops_what_a_trained_model_fills():
    model, _ = _fresh()
    _fit_ball(model)
    for step in range(1, 4 * TINY.occupancy_interval + 2, TINY.occupancy_interval):
        model.before_step(step)
    assert 0.05 < float(model.occupied.float().mean()) < 0.6  # the grid prunes the empty space
    rays = _camera_rays(40)
    with torch.no_grad():
        skipped = model.render_last_level(rays, white_bkgd=True)
        model.clear_occupancy()
        full = model.render_last_level(rays, white_bkgd=True)
    assert float(full.acc.max()) > 0.99 and float(full.acc.min()) < 0.01  # the ball is seen, and missed
    assert float((skipped.rgb - full.rgb).abs().max()) < 0.01
    assert float((skipped.acc - full.acc).abs().max()) < 0.01


def test_ablation_reads_level_zero_only():
    model, _ = _fresh(TriMipConfig(**{**vars(TINY), "prefilter": False}))
    assert float(model._level(torch.tensor([0.0, 0.5, 10.0])).abs().max()) == 0.0
    prefiltered, _ = _fresh()
    assert float(prefiltered._level(torch.tensor([10.0]))) == triplane.num_mip_levels(16) - 1


def test_training_is_deterministic_and_resumes_bit_exactly():
    scene = _scene()
    straight, opt_straight = _fresh()
    _train(straight, range(1, 13), opt_straight, scene, batch=128)

    first, opt_first = _fresh()
    _train(first, range(1, 7), opt_first, scene, batch=128)
    saved = {k: v.clone() for k, v in first.state_dict().items()}
    saved_opt = opt_first.state_dict()
    resumed, opt_resumed = _fresh()
    resumed.load_state_dict(saved)
    opt_resumed.load_state_dict(saved_opt)
    _train(resumed, range(7, 13), opt_resumed, scene, batch=128)

    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert "occupied" in saved and "occupancy_ema" in saved


def test_rays_that_miss_the_box():
    model, _ = _fresh()
    rays = RayBundle(
        origins=torch.tensor([[0.0, 5.0, 0.0]]),
        directions=torch.tensor([[1.0, 0.0, 0.0]]),
        viewdirs=torch.tensor([[1.0, 0.0, 0.0]]),
        radii=torch.tensor([[0.001]]),
        near=torch.tensor([[2.0]]),
        far=torch.tensor([[6.0]]),
        lossmult=torch.ones(1, 1),
    )
    (level,) = model(rays, randomized=False, white_bkgd=True)
    torch.testing.assert_close(level.rgb, torch.ones(1, 3))
    assert float(level.acc) == 0.0 and float(level.distance) == 2.0
