"""core.rays' one pinhole rule: shapes, hand-computed values, and the loaders' per-pixel route
(ImageSet) giving the same rays as the whole-image function."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mipnerf_cli.core.rays import pinhole_radius, pinhole_rays, pix2cam
from mipnerf_cli.data import load_scene
from mipnerf_cli.data.cameras import pix2cam_matrices


def test_pinhole_rays_shapes_and_a_pixel_by_hand():
    cam2world = torch.tensor([[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0]])  # 90° about z
    rays = pinhole_rays(cam2world, width=5, height=3, focal=2.0, near=0.5, far=4.0)
    assert len(rays) == 15
    for name, width in (("origins", 3), ("directions", 3), ("viewdirs", 3), ("radii", 1), ("near", 1), ("far", 1)):
        assert getattr(rays, name).shape == (15, width) and getattr(rays, name).dtype == torch.float32
    # Pixel (row 2, col 4): camera direction ((4.5 - 2.5)/2, -(2.5 - 1.5)/2, -1) = (1, -0.5, -1),
    # rotated 90° about z: (0.5, 1, -1).
    assert torch.allclose(rays.directions[2 * 5 + 4], torch.tensor([0.5, 1.0, -1.0]))
    assert torch.equal(rays.origins, torch.tensor([[1.0, 2.0, 3.0]]).expand(15, 3))
    assert torch.allclose(rays.viewdirs.norm(dim=-1), torch.ones(15))
    # dx between vertical neighbours is 1/f: radius 0.5 * 2/sqrt(12) everywhere.
    assert torch.allclose(rays.radii, torch.full((15, 1), 0.5 * 2 / math.sqrt(12)))
    assert torch.equal(rays.near, torch.full((15, 1), 0.5)) and torch.equal(rays.lossmult, torch.ones(15, 1))


def test_radius_is_the_distance_between_vertical_neighbours():
    cam2world = torch.tensor([[0.8, 0.0, 0.6, 0.0], [0.0, 1.0, 0.0, 0.0], [-0.6, 0.0, 0.8, 0.0]], dtype=torch.float64)
    rays = pinhole_rays(cam2world, width=4, height=3, focal=7.0, near=1.0, far=2.0)
    directions = rays.directions.view(3, 4, 3)
    dx = (directions[1:] - directions[:-1]).norm(dim=-1)
    assert torch.allclose(rays.radii.view(3, 4)[:2], dx * 2 / math.sqrt(12), atol=1e-7)
    matrix = cam2world[:, :3] @ pix2cam(torch.tensor([7.0]), torch.tensor([4]), torch.tensor([3]))[0]
    assert float(pinhole_radius(matrix)) == pytest.approx(float(dx[0, 0]) * 2 / math.sqrt(12), rel=1e-6)


def test_pix2cam_is_the_converters_matrix_bit_for_bit():
    focals, widths, heights = [1111.1110311937682, 555.5555155968841], [800, 400], [800, 400]
    ours = pix2cam_matrices(focals, widths, heights)
    f, cx, cy = np.array(focals), np.array(widths) * 0.5, np.array(heights) * 0.5
    assert ours.shape == (2, 3, 3) and ours.dtype == np.float64
    assert np.array_equal(ours[:, 0, 0], 1 / f) and np.array_equal(ours[:, 0, 2], -cx / f)
    assert np.array_equal(ours[:, 1, 1], -1 / f) and np.array_equal(ours[:, 1, 2], cy / f)
    assert np.array_equal(ours[:, 2], np.tile([0.0, 0.0, -1.0], (2, 1)))


@pytest.mark.parametrize("scene", ["convert/input/tiny", "convert/output/tiny"])  # Blender, multiscale
def test_the_loaders_rays_are_pinhole_rays(golden_dir, scene):
    images = load_scene(golden_dir / scene, "train")
    for i in range(images.num_images):
        loaded, _ = images.image_rays(i)
        made = pinhole_rays(
            images.cam2world[i], images.widths[i], images.heights[i], float(images.focal[i]), images.near, images.far
        )
        for name, value in loaded.tensors().items():
            if name == "lossmult":  # the loader's own: 4**level for multiscale data
                continue
            torch.testing.assert_close(getattr(made, name), value, rtol=0, atol=1e-6, msg=name)
