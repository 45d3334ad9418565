"""core/geometry.py (shapes and hand-checked values), the PLY writer, and the mesh / point-cloud steps of export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny import TINY_MODEL

from mipnerf_cli.core import geometry
from mipnerf_cli.core.models.mipnerf import MipNerf, ModelConfig
from mipnerf_cli.errors import MipNerfError


def test_grid_points_order_and_corners():
    axes = geometry.grid_axes(torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, 4.0]), 3)
    points = geometry.grid_points(axes, 0, 27)
    assert points.shape == (27, 3)
    assert points[0].tolist() == [-1.0, 0.0, 2.0] and points[-1].tolist() == [1.0, 1.0, 4.0]
    assert points[1].tolist() == [-1.0, 0.0, 3.0]  # z fastest
    assert points[9].tolist() == [0.0, 0.0, 2.0]  # x slowest
    assert torch.equal(geometry.grid_points(axes, 5, 11), points[5:11])
    with pytest.raises(ValueError):
        geometry.grid_axes(torch.zeros(3), torch.ones(3), 1)


def test_density_from_points_shape_and_matches_the_model_at_a_sample():
    torch.manual_seed(0)
    model = MipNerf(ModelConfig(**TINY_MODEL))
    points = torch.randn(10, 3)
    density = geometry.density_from_points(model, points, 0.01)
    assert density.shape == (10,) and (density >= 0).all()
    # The same value by hand: the encoding of (mean, variance), the MLP, softplus(raw + bias).
    from mipnerf_cli.core import mip

    encoded = mip.integrated_pos_enc((points[:, None], torch.full((10, 1, 3), 0.01)), 0, 4)
    _, raw = model.mlp(encoded, None, density_only=True)
    assert torch.allclose(density, torch.nn.functional.softplus(raw[:, 0, 0] - 1.0), atol=1e-6)
    # A blurrier Gaussian damps the high frequencies, so the density changes.
    assert not torch.allclose(density, geometry.density_from_points(model, points, 1.0))


def test_footprint_variance_is_a_uniform_pixel():
    assert geometry.footprint_variance(4.0, 100.0) == pytest.approx(0.04**2 / 12)


def test_points_from_depth_and_nearest_camera():
    origins = torch.tensor([[0.0, 0.0, 4.0], [1.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    points = geometry.points_from_depth(origins, directions, torch.tensor([3.0, 0.5]))
    assert points.tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    centres = torch.tensor([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])
    assert geometry.nearest_camera(points, centres).tolist() == [0, 1]


def test_rays_towards_reach_the_point_mid_window():
    points, centres = torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.0, 3.0, 4.0]])
    rays = geometry.rays_towards(points, centres, focal=50.0, window=0.1)
    assert rays["directions"].shape == (1, 3) and rays["near"].shape == (1, 1)
    assert rays["near"].item() == pytest.approx(4.9) and rays["far"].item() == pytest.approx(5.1)
    middle = rays["origins"] + 0.5 * (rays["near"] + rays["far"]) * rays["directions"]
    assert torch.allclose(middle, points, atol=1e-6)
    assert rays["radii"].item() == pytest.approx(2 / math.sqrt(12) / 50)


def test_otsu_splits_two_clusters_between_them():
    generator = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(9000, generator=generator) * 0.1, 5 + torch.randn(1000, generator=generator) * 0.3])
    threshold = geometry.otsu_threshold(values)
    assert (values[:9000] < threshold).all() and (values[9000:] > threshold).all()
    assert geometry.otsu_threshold(torch.full((5,), 2.0)) == 2.0


# ----------------------------------------------------------------------------- PLY


def test_ply_round_trip_and_header(tmp_path):
    from mipnerf_cli.io.ply import read_ply, write_ply

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.5]], dtype=np.float32)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [7, 8, 9]], dtype=np.uint8)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    path = tmp_path / "mesh.ply"
    write_ply(path, vertices, colours, faces)
    data = path.read_bytes()
    assert data.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert b"element vertex 4\n" in data and b"element face 2\n" in data
    assert len(data) == data.index(b"end_header\n") + 11 + 4 * 15 + 2 * 13
    back_vertices, back_colours, back_faces = read_ply(path)
    assert np.array_equal(back_vertices, vertices) and np.array_equal(back_colours, colours)
    assert np.array_equal(back_faces, faces)
    write_ply(tmp_path / "cloud.ply", vertices, colours)
    assert read_ply(tmp_path / "cloud.ply")[2] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.ply", "mesh.ply"]  # no temporary left


def test_ply_read_by_trimesh(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from mipnerf_cli.io.ply import write_ply

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    write_ply(tmp_path / "t.ply", vertices, np.array([[10, 20, 30]] * 3, dtype=np.uint8), np.array([[0, 1, 2]]))
    mesh = trimesh.load(tmp_path / "t.ply", process=False)
    assert np.allclose(mesh.vertices, vertices) and mesh.faces.tolist() == [[0, 1, 2]]
    assert mesh.visual.vertex_colors[0, :3].tolist() == [10, 20, 30]


def test_ply_unwritable_folder_is_one_error_and_no_file(tmp_path):
    from mipnerf_cli.io.ply import write_ply

    with pytest.raises(MipNerfError, match="cannot write there"):
        write_ply(tmp_path / "missing" / "x.ply", np.zeros((1, 3)), np.zeros((1, 3)))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((2, 3)), np.zeros((1, 3)))


# ----------------------------------------------------------------------------- mesh and point cloud steps


def _two_balls(resolution: int = 48):
    """Density 10 inside two balls (radius 0.5 at x = -1, radius 0.3 at x = +1), 0 outside."""
    lower, upper = torch.full((3,), -2.0), torch.full((3,), 2.0)
    axes = geometry.grid_axes(lower, upper, resolution)
    points = geometry.grid_points(axes, 0, resolution**3).numpy()
    inside = (np.linalg.norm(points - [-1, 0, 0], axis=1) < 0.5) | (np.linalg.norm(points - [1, 0, 0], axis=1) < 0.3)
    return (10.0 * inside).astype(np.float32).reshape((resolution,) * 3), lower, upper


def test_marching_cubes_finds_the_balls_and_keeps_the_largest():
    from mipnerf_cli.export import geometry as export

    densities, lower, upper = _two_balls()
    threshold = export.choose_threshold(densities)
    assert 0 < threshold < 10
    vertices, faces = export.marching_cubes(densities, threshold, lower, upper)
    radius = np.linalg.norm(vertices - [-1, 0, 0], axis=1)
    big = vertices[:, 0] < 0
    assert np.abs(radius[big] - 0.5).max() < 4 / 47  # within a grid step
    kept, kept_faces, pieces = export.largest_piece(vertices, faces)
    assert pieces == 2 and (kept[:, 0] < 0).all() and len(kept) == big.sum()
    assert kept_faces.max() == len(kept) - 1
    assert np.allclose(np.linalg.norm(kept[kept_faces].mean(axis=1) - [-1, 0, 0], axis=1), 0.5, atol=0.1)


def test_no_surface_says_the_density_range():
    from mipnerf_cli.export import geometry as export

    densities, lower, upper = _two_balls(16)
    with pytest.raises(
        MipNerfError, match=r"--threshold 20 gives no surface: the density on the grid ranges from 0 to 10"
    ):
        export.marching_cubes(densities, 20.0, lower, upper)


def test_outlier_mask_drops_the_far_points():
    from mipnerf_cli.export import geometry as export

    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(2000, 3)) * 0.1, [[5.0, 5, 5], [-6.0, 0, 0]]])
    keep = export.outlier_mask(points, neighbours=8, std_ratio=2.0)
    assert not keep[-2:].any() and keep[:2000].mean() > 0.95


def test_grid_memory_check_gives_the_figures():
    from mipnerf_cli.export import geometry as export

    export.check_grid_fits(64, 10**9)  # 4 MB of 1 GB
    with pytest.raises(
        MipNerfError,
        match=r"--resolution 1000: the density grid needs about 16 GB of memory but 1 GB is "
        r"available; use --resolution 368 or less",
    ):
        export.check_grid_fits(1000, 10**9, flag="--resolution")  # the message names the flag typed
    with pytest.raises(MipNerfError, match=r"^--grid 1000: .* use --grid 368 or less$"):
        export.check_grid_fits(1000, 10**9)  # --grid: export's name for it
