"""Loaders (Blender, multiscale), ImageSet rays, the batch sampler, and the real lego scene."""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from golden import load_golden
from PIL import Image

from mipnerf_cli.convert.multiscale import convert_blender
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.data import ImageSet, load_scene, sample_batch, scene_kind
from mipnerf_cli.demo.scenes import DemoSceneSpec, make_demo_scene
from mipnerf_cli.errors import MipNerfError

RAY_FIELDS = ("origins", "directions", "viewdirs", "radii", "lossmult", "near", "far")


def all_rays(images: ImageSet) -> tuple[RayBundle, torch.Tensor]:
    parts = [images.image_rays(i) for i in range(images.num_images)]
    return RayBundle.cat([rays for rays, _ in parts]), torch.cat([pixels.reshape(-1, 3) for _, pixels in parts])


@pytest.fixture(scope="module")
def golden():
    return load_golden("rays")


@pytest.fixture(scope="module")
def tiny_blender(golden_dir) -> Path:
    return golden_dir / "convert" / "input" / "tiny"


@pytest.fixture(scope="module")
def tiny_multiscale(golden_dir) -> Path:
    return golden_dir / "convert" / "output" / "tiny"


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory) -> Path:
    """A small non-square demo scene (24 x 40) and its multiscale conversion."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_scene(
        root / "blender" / "wide", DemoSceneSpec(height=24, width=40, num_train=3, num_val=1, num_test=1, seed=2)
    )
    convert_blender(root / "blender", root / "multiscale", n_down=3)
    return root


# ---------------------------------------------------------------- golden rays


@pytest.mark.parametrize("white_bkgd", [True, False])
def test_blender_rays_match_reference(tiny_blender, golden, white_bkgd):
    images = load_scene(tiny_blender, "train", white_bkgd=white_bkgd)
    assert not images.multiscale and images.num_images == 4 and images.num_pixels == 4 * 64 * 64
    assert images.focal[0].item() == pytest.approx(float(golden["blender_focal"]), rel=1e-12)
    rays, pixels = all_rays(images)
    for field in RAY_FIELDS:
        want = golden[f"blender_{field}"].reshape(-1, golden[f"blender_{field}"].shape[-1])
        np.testing.assert_allclose(getattr(rays, field).numpy(), want, rtol=1e-5, atol=1e-5, err_msg=field)
        assert getattr(rays, field).dtype == torch.float32
    want = golden[f"blender_pixels_white_bkgd_{str(white_bkgd).lower()}"].reshape(-1, 3)
    np.testing.assert_array_equal(pixels.numpy(), want)


@pytest.mark.parametrize("white_bkgd", [True, False])
def test_multiscale_rays_match_reference(tiny_multiscale, golden, white_bkgd):
    images = load_scene(tiny_multiscale, "train", white_bkgd=white_bkgd)
    assert images.multiscale
    np.testing.assert_array_equal(np.stack([images.heights, images.widths], 1), golden["multiscale_image_hw"])
    assert images.levels == [0, 1, 2, 3] * 4
    np.testing.assert_array_equal(images.lossmult.numpy(), [1, 4, 16, 64] * 4)
    rays, pixels = all_rays(images)
    for field in RAY_FIELDS:
        np.testing.assert_allclose(
            getattr(rays, field).numpy(), golden[f"multiscale_{field}"], rtol=1e-5, atol=1e-5, err_msg=field
        )
    if white_bkgd:
        np.testing.assert_array_equal(pixels.numpy(), golden["multiscale_pixels_white_bkgd_true"])
    else:  # the plain RGB channels of the PNGs
        first = np.asarray(Image.open(tiny_multiscale / "images_train" / "000_d0.png"))[..., :3].reshape(-1, 3)
        np.testing.assert_array_equal(pixels[: 64 * 64].numpy(), first.astype(np.float32) / 255)


def test_pixel_rays_equal_image_rays_everywhere(tiny_multiscale):
    images = load_scene(tiny_multiscale, "train")
    rays, pixels = all_rays(images)
    boundaries = images.offsets[1:-1]
    index = torch.cat(
        [
            torch.randint(0, images.num_pixels, (500,)),
            boundaries,
            boundaries - 1,
            torch.tensor([0, images.num_pixels - 1]),
        ]
    )
    picked, picked_pixels = images.pixel_rays(index)
    for field in RAY_FIELDS:
        assert torch.equal(getattr(picked, field), getattr(rays, field)[index]), field
    assert torch.equal(picked_pixels, pixels[index])
    with pytest.raises(IndexError):
        images.pixel_rays(torch.tensor([images.num_pixels]))
    with pytest.raises(IndexError):
        images.pixel_rays(torch.tensor([-1]))


def test_pixels_stay_uint8_in_one_buffer(tiny_multiscale):
    images = load_scene(tiny_multiscale, "train")
    assert images.pixels_rgba.dtype == torch.uint8
    assert images.pixels_rgba.shape == (images.num_pixels, 4)
    start = images.pixels_rgba.data_ptr()
    for i, image in enumerate(images.images):
        assert image.dtype == torch.uint8 and image.shape == (images.heights[i], images.widths[i], 4)
        assert image.data_ptr() == start + 4 * int(images.offsets[i])  # a view, not a copy
    level1 = np.asarray(Image.open(tiny_multiscale / "images_train" / "001_d1.png"))
    np.testing.assert_array_equal(images.images[5].numpy(), level1)


def test_imageset_built_from_separate_images_matches_loaded(tiny_blender):
    loaded = load_scene(tiny_blender, "val")
    rebuilt = ImageSet(
        names=loaded.names,
        images=[image.clone() for image in loaded.images],
        heights=loaded.heights,
        widths=loaded.widths,
        levels=loaded.levels,
        cam2world=loaded.cam2world,
        focal=loaded.focal,
        pix2cam=loaded.pix2cam,
        lossmult=loaded.lossmult,
    )
    index = torch.randint(0, loaded.num_pixels, (300,))
    (a, pa), (b, pb) = loaded.pixel_rays(index), rebuilt.pixel_rays(index)
    assert torch.equal(pa, pb) and torch.equal(a.directions, b.directions)
    assert loaded.names == ["r_0", "r_1", "r_2", "r_3"]


# ---------------------------------------------------------------- cross-checks between scales and loaders


def test_multiscale_levels_are_consistent_cameras(demo_scene):
    images = load_scene(demo_scene / "multiscale" / "wide", "train")
    assert images.levels[:3] == [0, 1, 2]
    full, _ = images.image_rays(0)
    half, _ = images.image_rays(1)
    h, w = images.heights[0], images.widths[0]
    assert (images.heights[1], images.widths[1]) == (h // 2, w // 2)
    blocks = full.directions.reshape(h // 2, 2, w // 2, 2, 3).mean(dim=(1, 3)).reshape(-1, 3)
    # A level-1 pixel centre is the mean of its four level-0 pixel centres; directions are linear in them.
    torch.testing.assert_close(half.directions, blocks, rtol=0, atol=1e-6)
    torch.testing.assert_close(half.radii, 2 * full.radii[: half.radii.shape[0]], rtol=1e-6, atol=0)
    assert torch.equal(half.origins[0], full.origins[0])


def test_blender_and_multiscale_level0_agree(demo_scene):
    blender = load_scene(demo_scene / "blender" / "wide", "train")
    multiscale = load_scene(demo_scene / "multiscale" / "wide", "train")
    for i in range(blender.num_images):
        a, pa = blender.image_rays(i)
        b, pb = multiscale.image_rays(3 * i)
        for field in ("origins", "directions", "viewdirs", "radii"):
            torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_non_square_pixel_convention(demo_scene):
    images = load_scene(demo_scene / "blender" / "wide", "test")
    height, width = images.heights[0], images.widths[0]
    assert (height, width) == (24, 40)
    transforms = json.loads((demo_scene / "blender" / "wide" / "transforms_test.json").read_text())
    focal = 0.5 * width / math.tan(0.5 * transforms["camera_angle_x"])
    assert images.focal[0].item() == pytest.approx(focal, rel=1e-12)
    rays, _ = images.image_rays(0)
    rotation = images.cam2world[0, :3, :3]
    camera = (rotation.T @ rays.directions.double().T).T.reshape(height, width, 3)
    for row, col in [(0, 0), (23, 39), (5, 31)]:
        expected = [(col - width / 2 + 0.5) / focal, -(row - height / 2 + 0.5) / focal, -1.0]
        np.testing.assert_allclose(camera[row, col].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(rays.radii.numpy(), 2 / math.sqrt(12) / focal, rtol=1e-6)


def test_downscale_averages_rgba_blocks(demo_scene):
    full = load_scene(demo_scene / "blender" / "wide", "train")
    half = load_scene(demo_scene / "blender" / "wide", "train", downscale=2)
    assert (half.heights[0], half.widths[0]) == (12, 20)
    assert half.focal[0].item() == pytest.approx(full.focal[0].item() / 2, rel=1e-12)
    blocks = full.images[1].numpy().astype(np.float32).reshape(12, 2, 20, 2, 4).mean(axis=(1, 3))
    np.testing.assert_array_equal(half.images[1].numpy(), np.rint(blocks).astype(np.uint8))
    with pytest.raises(MipNerfError, match="not divisible by 16"):
        load_scene(demo_scene / "blender" / "wide", "train", downscale=16)
    with pytest.raises(MipNerfError, match="Blender scenes only"):
        load_scene(demo_scene / "multiscale" / "wide", "train", downscale=2)


def test_rgb_pngs_load_as_opaque(tiny_blender, tmp_path):
    scene = tmp_path / "rgb"
    shutil.copytree(tiny_blender, scene)
    path = scene / "train" / "r_0.png"
    rgb = np.asarray(Image.open(path))[..., :3].copy()
    Image.fromarray(rgb, "RGB").save(path)
    images = load_scene(scene, "train", white_bkgd=True)
    assert (images.images[0][..., 3] == 255).all()
    _, pixels = images.image_rays(0)
    np.testing.assert_array_equal(pixels.numpy(), rgb.astype(np.float32) / 255)


# ---------------------------------------------------------------- scene detection and errors


def test_scene_kind_and_mismatch_errors(tiny_blender, tiny_multiscale, tmp_path):
    assert scene_kind(tiny_blender) == "blender"
    assert scene_kind(tiny_multiscale) == "multiscale"
    with pytest.raises(MipNerfError, match="not a scene"):
        scene_kind(tmp_path)
    with pytest.raises(MipNerfError, match="scene folder not found"):
        load_scene(tmp_path / "missing", "train")
    with pytest.raises(MipNerfError, match="is a Blender scene.*mipnerf convert"):
        load_scene(tiny_blender, "train", multiscale=True)
    with pytest.raises(MipNerfError, match="is a multiscale scene.*--multiscale"):
        load_scene(tiny_multiscale, "train", multiscale=False)
    with pytest.raises(MipNerfError, match="unknown split"):
        load_scene(tiny_blender, "training")
    assert load_scene(tiny_multiscale, "val", multiscale=True).num_images == 16


def break_metadata(source: Path, target: Path, change) -> Path:
    shutil.copytree(source, target)
    meta = json.loads((target / "metadata.json").read_text())
    change(meta)
    (target / "metadata.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("test"), "metadata.json: no 'test' split"),
        (lambda m: m["test"].pop("pix2cam"), "test has no 'pix2cam' list"),
        (lambda m: m["test"]["width"].pop(), "test.width must be a list of 16 entries"),
        (
            lambda m: m["test"]["width"].__setitem__(0, 32),
            "000_d0.png: image is 64x64 (HxW) but metadata.json says 64x32",
        ),
        (lambda m: m["test"]["file_path"].__setitem__(2, "images_test/none.png"), "none.png: image file not found"),
        (lambda m: m["test"]["near"].__setitem__(3, 1.0), "different near bounds"),
    ],
    ids=["no-split", "no-key", "length", "size", "missing-png", "near"],
)
def test_bad_multiscale_metadata(tiny_multiscale, tmp_path, change, message):
    scene = break_metadata(tiny_multiscale, tmp_path / "scene", change)
    with pytest.raises(MipNerfError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_scene(scene, "test")


def test_bad_blender_inputs_name_the_file(tiny_blender, tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(tiny_blender, scene)
    (scene / "val" / "r_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(MipNerfError, match=r"val/r_1.png"):
        load_scene(scene, "val")
    (scene / "transforms_test.json").write_text("[1, 2")
    with pytest.raises(MipNerfError, match="transforms_test.json: not valid JSON"):
        load_scene(scene, "test")
    assert load_scene(scene, "train").num_images == 4


# ---------------------------------------------------------------- batch sampler


def test_sample_batch_is_a_pure_function_of_seed_and_step():
    first = sample_batch(7, 123, 1000, 4096)
    assert first.dtype == torch.int64 and first.shape == (4096,)
    assert torch.equal(first, sample_batch(7, 123, 1000, 4096))
    assert not torch.equal(first, sample_batch(7, 124, 1000, 4096))
    assert not torch.equal(first, sample_batch(8, 123, 1000, 4096))
    # Unaffected by the global torch RNG.
    torch.manual_seed(99)
    torch.rand(10)
    assert torch.equal(first, sample_batch(7, 123, 1000, 4096))


def test_sample_batch_is_uniform_over_all_pixels():
    num_pixels = 50
    counts = torch.bincount(
        torch.cat([sample_batch(0, step, num_pixels, 2000) for step in range(50)]), minlength=num_pixels
    )
    expected = 50 * 2000 / num_pixels
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 100  # 49 degrees of freedom: p < 1e-4 above ~95
    large = sample_batch(1, 0, 85_000_000, 100_000)
    assert int(large.min()) >= 0 and int(large.max()) < 85_000_000
    assert float(large.double().mean()) == pytest.approx(42_500_000, rel=0.01)
    with pytest.raises(ValueError):
        sample_batch(0, 0, 0, 10)


# ---------------------------------------------------------------- the real lego scene


def project(images: ImageSet, i: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuous pixel coordinates (x right, y down) of world ``points`` (N, 3) in image i,
    through the inverse of the loader's own pix2cam and cam2world."""
    camera = (points - images.cam2world[i, :3, 3].numpy()) @ images.cam2world[i, :3, :3].numpy()
    homogeneous = camera @ np.linalg.inv(images.pix2cam[i].numpy()).T
    return homogeneous[:, 0] / homogeneous[:, 2], homogeneous[:, 1] / homogeneous[:, 2]


def visual_hull(images: ImageSet, grid: int = 40, extent: float = 1.5) -> tuple[np.ndarray, list[float]]:
    """Carve a voxel grid with every image's alpha silhouette; return the kept voxel centres
    and, per image, the IoU of the hull's (dilated) projection with the silhouette."""
    axis = np.linspace(-extent, extent, grid)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    masks = [image[..., 3].numpy() > 0 for image in images.images]
    keep = np.ones(len(points), bool)
    for i, mask in enumerate(masks):
        x, y = project(images, i, points)
        inside = (x >= 0) & (x < mask.shape[1]) & (y >= 0) & (y < mask.shape[0])
        keep &= (
            inside & mask[np.clip(y.astype(int), 0, mask.shape[0] - 1), np.clip(x.astype(int), 0, mask.shape[1] - 1)]
        )
    ious = []
    for i, mask in enumerate(masks):
        x, y = project(images, i, points[keep])
        hull = np.zeros(mask.shape, np.uint8)
        hull[np.clip(y.astype(int), 0, mask.shape[0] - 1), np.clip(x.astype(int), 0, mask.shape[1] - 1)] = 1
        size = 2 * int(images.focal[i].item() * (axis[1] - axis[0]) / 4.0) + 1  # about a voxel's footprint
        hull = cv2.dilate(hull, np.ones((size, size), np.uint8)) > 0
        ious.append(float((hull & mask).sum() / (hull | mask).sum()))
    return points[keep], ious


def test_lego_blender_loads_and_is_aligned(lego_dir):
    start = time.perf_counter()
    images = load_scene(lego_dir, "train")
    assert images.num_images == 100
    assert images.num_pixels == 100 * 800 * 800
    assert set(images.heights) == {800} and set(images.widths) == {800}
    assert images.focal[0].item() == pytest.approx(1111.11, abs=0.01)
    assert images.pixels_rgba.element_size() * images.pixels_rgba.numel() == 4 * 64_000_000
    # Every camera looks at the origin: the ray through the image centre passes it within a
    # pixel's footprint (the centre lies between four pixel centres), and it lands on the object.
    centre = torch.tensor([[i * 640_000 + 399 * 800 + 399 for i in range(100)]]).reshape(-1)
    rays, _ = images.pixel_rays(centre)
    to_origin = -rays.origins.double()
    along = (to_origin * rays.viewdirs.double()).sum(-1, keepdim=True)
    miss = (to_origin - along * rays.viewdirs.double()).norm(dim=-1)
    assert float(miss.max()) < 0.01
    assert all(int(image[400, 400, 3]) == 255 for image in images.images)
    # Images and poses belong together: the silhouettes carve a consistent visual hull.
    # (Shuffled poses leave ~30% coverage, a flipped y axis ~40%.)
    points, ious = visual_hull(images)
    assert len(points) > 1000
    assert min(ious) > 0.7 and np.mean(ious) > 0.8, (min(ious), np.mean(ious))
    # Projection and rays agree: the ray through the pixel where a hull point projects
    # passes within half a pixel's footprint of that point, in every image.
    point = points[len(points) // 2]
    index = []
    for i in range(images.num_images):
        x, y = project(images, i, point[None])
        index.append(i * 640_000 + int(y[0]) * 800 + int(x[0]))
    rays, _ = images.pixel_rays(torch.tensor(index))
    offset = torch.from_numpy(point)[None] - rays.origins.double()
    along = (offset * rays.viewdirs.double()).sum(-1, keepdim=True)
    distance = (offset - along * rays.viewdirs.double()).norm(dim=-1)
    assert float(distance.max()) < 0.75 * float(along.max()) / 1111.11
    assert time.perf_counter() - start < 60


@pytest.mark.slow
def test_lego_multiscale_fits_in_memory(lego_dir, tmp_path):
    convert_blender(lego_dir, tmp_path / "ms")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    images = load_scene(tmp_path / "ms" / lego_dir.name, "train")
    assert images.num_pixels == 100 * (800**2 + 400**2 + 200**2 + 100**2)
    assert images.pixels_rgba.numel() == 4 * 85_000_000  # bytes: 340 MB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < 2 * 2**30, (before, peak)
    rays, pixels = images.pixel_rays(sample_batch(0, 0, images.num_pixels, 4096))
    assert rays.origins.shape == (4096, 3) and pixels.shape == (4096, 3)
    assert set(np.unique(rays.lossmult.numpy())) <= {1.0, 4.0, 16.0, 64.0}
