"""TSDF fusion, view agreement, floater pieces and NDC unprojection on analytic scenes
(export/fusion.py, export/pieces.py): a sphere whose depth maps are computed exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mipnerf_cli.core.rays import pinhole_rays, pix2cam
from mipnerf_cli.demo.scenes import look_at, sphere_point
from mipnerf_cli.export import fusion, pieces

SIZE, FOCAL = 48, 60.0
CENTRE, RADIUS = np.array([0.1, -0.05, 0.0]), 0.5


def ring_cameras(count: int = 12) -> torch.Tensor:
    """(count, 3, 4) cameras on two rings at distance 3, looking at the origin."""
    poses = [look_at(sphere_point(2 * math.pi * i / count, 0.5 if i % 2 else -0.3, 3.0)) for i in range(count)]
    return torch.tensor(np.stack(poses)[:, :3], dtype=torch.float64)


def sphere_depth(cam2world: torch.Tensor, centre=CENTRE, radius=RADIUS) -> torch.Tensor:
    """(H, W) float32 depth along the view axis of the sphere's first hit, +inf where missed."""
    rays = pinhole_rays(cam2world, SIZE, SIZE, FOCAL, 0.0, 10.0)
    origin = rays.origins.double()
    direction = rays.directions.double()  # camera z = -1, so the distance along it is the depth
    offset = origin - torch.tensor(centre)
    a = (direction * direction).sum(-1)
    b = 2 * (offset * direction).sum(-1)
    c = (offset * offset).sum(-1) - radius**2
    disc = b * b - 4 * a * c
    t = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
    return torch.where(disc > 0, t, torch.full_like(t, math.inf)).float().reshape(SIZE, SIZE)


def grid(resolution: int, half: float = 0.9):
    axis = torch.linspace(-half, half, resolution, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return points, np.full(3, -half), 2 * half / (resolution - 1)


def fuse_sphere_mesh(depths, cameras, resolution=40, truncation=0.1):
    points, lower, spacing = grid(resolution)
    intrinsics = pix2cam(
        torch.full((len(cameras),), FOCAL), torch.full((len(cameras),), SIZE), torch.full((len(cameras),), SIZE)
    )
    tsdf, weight = fusion.tsdf_from_views(points, depths, cameras, intrinsics, truncation)
    shape = (resolution,) * 3
    return fusion.mesh_from_tsdf(tsdf.reshape(shape).numpy(), weight.reshape(shape).numpy(), lower, spacing)


def test_pixels_from_points_inverts_the_pinhole_rays():
    camera = ring_cameras(3)[1]
    rays = pinhole_rays(camera, SIZE, SIZE, FOCAL, 0.0, 10.0)
    depth = torch.linspace(1.0, 4.0, SIZE * SIZE, dtype=torch.float64)
    points = rays.origins.double() + depth[:, None] * rays.directions.double()
    cols, rows, found = fusion.pixels_from_points(
        points, camera, pix2cam(torch.tensor([FOCAL]), torch.tensor([SIZE]), torch.tensor([SIZE]))[0]
    )
    index = torch.arange(SIZE * SIZE)
    assert torch.equal(rows, index // SIZE) and torch.equal(cols, index % SIZE)
    assert torch.allclose(found, depth, atol=1e-5)


def test_tsdf_fusion_of_a_sphere_lands_on_it():
    cameras = ring_cameras()
    depths = [sphere_depth(camera) for camera in cameras]
    vertices, faces = fuse_sphere_mesh(depths, cameras)
    assert len(faces) > 1000
    error = np.abs(np.linalg.norm(vertices - CENTRE, axis=1) - RADIUS)
    spacing = 1.8 / 39
    # within a voxel everywhere, a quarter of one typically (a pixel is about a voxel wide there)
    assert error.max() < 0.75 * spacing and np.median(error) < 0.25 * spacing, (error.max(), np.median(error))
    assert pieces.piece_labels(faces, len(vertices)).max() == 0  # one closed piece


def test_a_floater_in_one_view_is_carved_by_the_others():
    cameras = ring_cameras()
    depths = [sphere_depth(camera) for camera in cameras]
    blob = sphere_depth(
        cameras[0], centre=np.asarray(cameras[0, :, 3]) * 0.75, radius=0.08
    )  # between camera and sphere
    depths[0] = torch.minimum(depths[0], blob)  # only view 0 renders the floater
    vertices, faces = fuse_sphere_mesh(depths, cameras)
    error = np.abs(np.linalg.norm(vertices - CENTRE, axis=1) - RADIUS)
    assert error.max() < 0.05, error.max()  # nothing left near the floater


def test_view_agreement_counts_the_views_that_see_a_point_and_their_colour():
    cameras = ring_cameras()
    depths = [sphere_depth(camera) for camera in cameras]
    colours = [torch.full((SIZE, SIZE, 3), i / 11.0) for i in range(len(cameras))]
    intrinsics = pix2cam(torch.full((12,), FOCAL), torch.full((12,), SIZE), torch.full((12,), SIZE))
    towards_first = np.asarray(cameras[0, :, 3]) - CENTRE
    on_surface = torch.from_numpy(CENTRE + RADIUS * towards_first / np.linalg.norm(towards_first))[None]
    floating = torch.from_numpy(CENTRE + 1.5 * RADIUS * towards_first / np.linalg.norm(towards_first))[None]
    count, colour = fusion.view_agreement(torch.cat([on_surface, floating]), depths, colours, cameras, intrinsics, 0.03)
    assert count[1] == 0 and 1 <= count[0] <= 6  # the near side of the sphere: a few views, not the far ones
    assert count[0] >= 1 and colour[1].abs().sum() == 0
    assert float(colour[0, 0]) == pytest.approx(float(colour[0, 1]))


def test_small_pieces_and_pieces_few_views_see_are_floaters():
    big = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    tiny = big * 0.01 + 5
    lonely = big + 10
    vertices = np.concatenate([big, tiny, lonely])
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    views = np.array([3, 3, 3, 5, 5, 5, 1, 1, 1])
    kept, kept_faces, keep, summary = pieces.drop_floaters(vertices, faces, views, min_size=0.1, min_views=2)
    assert summary == pieces.Pieces(total=3, dropped=2, dropped_vertices=6)
    assert np.array_equal(kept, big) and np.array_equal(kept_faces, [[0, 1, 2]]) and keep.sum() == 3


def test_world_from_ndc_inverts_the_llff_ndc_projection():
    from mipnerf_cli.data.formats.llff import ndc_rays

    rng = np.random.default_rng(0)
    origins = np.zeros((50, 3))
    directions = np.concatenate([rng.uniform(-0.4, 0.4, (50, 2)), -np.ones((50, 1))], 1)
    depth = rng.uniform(1.5, 30.0, 50)
    focal, width, height = 40.0, 64, 48
    ndc_o, ndc_d = ndc_rays(origins, directions, focal, width, height)
    # The NDC point at parameter t along the NDC ray is the world point of depth z with t = 1 - near / z.
    t = 1 - 1.0 / depth
    world = fusion.world_from_ndc(torch.tensor(ndc_o + t[:, None] * ndc_d), focal, width, height)
    assert np.allclose(world.numpy(), origins + depth[:, None] * directions, atol=1e-9)


def demo_depth(cam2world: torch.Tensor, size: int, focal: float, floater=None) -> torch.Tensor:
    """(size, size) depth along the view axis of the demo scene (demo.shade), +inf where empty;
    `floater` (centre, radius) adds a sphere this view alone renders."""
    from mipnerf_cli.demo import scenes as demo

    rays = pinhole_rays(cam2world, size, size, focal, 0.0, 10.0)
    directions = rays.directions.double().numpy()
    norm = np.linalg.norm(directions, axis=1)
    _, t = demo.shade(rays.origins[0].double().numpy(), directions / norm[:, None], demo.palette(0))
    depth = torch.from_numpy(t / norm)
    if floater is not None:
        depth = torch.minimum(depth, sphere_depth_at(rays, *floater))
    return depth.float().reshape(size, size)


def sphere_depth_at(rays, centre, radius) -> torch.Tensor:
    offset = rays.origins.double() - torch.tensor(centre)
    direction = rays.directions.double()
    a, b = (direction * direction).sum(-1), 2 * (offset * direction).sum(-1)
    disc = b * b - 4 * a * ((offset * offset).sum(-1) - radius**2)
    return torch.where(disc > 0, (-b - disc.clamp(min=0).sqrt()) / (2 * a), torch.full_like(b, math.inf))


def test_demo_scene_fusion_keeps_every_object_and_drops_the_floaters():
    """Exact depth maps of the demo scene from 24 cameras, plus two floaters: one that a single
    view renders (carved by the others) and a speck every view renders (dropped by size).
    All four objects are kept."""
    from mipnerf_cli.demo import geometry as demo_geometry
    from mipnerf_cli.demo import scenes as demo

    size = 40
    focal = 0.5 * size / math.tan(0.5 * demo.CAMERA_ANGLE_X)
    cameras = torch.tensor(
        np.stack([look_at(sphere_point(2 * math.pi * i / 12, e, 4.0))[:3] for i in range(12) for e in (0.3, 0.9)])
    )
    speck = (np.array([0.0, -1.2, 0.9]), 0.03)
    lonely = (np.asarray(cameras[0, :, 3]) * 0.6, 0.06)  # between camera 0 and the scene
    depths = [demo_depth(camera, size, focal, floater=speck) for camera in cameras]
    depths[0] = torch.minimum(depths[0], demo_depth(cameras[0], size, focal, floater=lonely))
    intrinsics = pix2cam(torch.full((24,), focal), torch.full((24,), size), torch.full((24,), size))
    points, lower, spacing = grid(72, half=1.7)
    tsdf, weight = fusion.tsdf_from_views(points.float(), depths, cameras, intrinsics, 0.12)
    shape = (72,) * 3
    vertices, faces = fusion.mesh_from_tsdf(tsdf.reshape(shape).numpy(), weight.reshape(shape).numpy(), lower, spacing)
    views, _ = fusion.view_agreement(torch.from_numpy(vertices).double(), depths, None, cameras, intrinsics, 0.06)
    kept, _, _, found = pieces.drop_floaters(
        vertices, faces, views.numpy(), min_size=0.02 * 3.4 * math.sqrt(3), min_views=2
    )
    assert found.dropped >= 1  # the speck
    assert np.linalg.norm(kept - speck[0], axis=1).min() > 0.1
    assert np.linalg.norm(vertices - lonely[0], axis=1).min() > 0.1  # carved before meshing
    for centre, radius in demo_geometry.SPHERES:
        near = np.abs(np.linalg.norm(kept - centre, axis=1) - radius) < 0.05
        assert near.sum() > 100, (centre, near.sum())
    for centre, half, _ in demo_geometry.BOXES:
        inside = (np.abs(kept - centre) <= half + 0.06).all(axis=1)
        assert inside.sum() > 100, (centre, inside.sum())


def test_first_hit_distance_finds_where_the_opacity_reaches_the_level():
    """A slab of density 20 from x = 0.5 on: opacity 1 - exp(-20 s) reaches 0.2 after
    s = ln(1.25) / 20 = 0.0112 inside it; a ray that misses the slab hits nothing."""
    axis = torch.linspace(-1, 1, 81)
    densities = (axis[:, None, None] >= 0.5).float().expand(81, 81, 81) * 20.0
    lower, upper = torch.full((3,), -1.0), torch.full((3,), 1.0)
    origins = torch.tensor([[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    directions = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # unnormalised: t is in units of 2
    hit = fusion.first_hit_distance(densities, lower, upper, origins, directions, 0.0, 1.0, 0.001, 0.2)
    assert float(hit[0]) * 2 - 1 == pytest.approx(0.5 + math.log(1.25) / 20, abs=0.03)  # grid cells are 0.025
    assert math.isinf(float(hit[1]))
