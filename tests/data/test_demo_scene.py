"""`mipnerf demo-scene`: a deterministic procedural Blender scene with fine, aliasing texture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mipnerf_cli.convert.multiscale import convert_blender
from mipnerf_cli.data import load_scene
from mipnerf_cli.demo.scenes import (
    CAMERA_RADIUS,
    DemoSceneSpec,
    camera_poses,
    focal_length,
    make_demo_scene,
    palette,
    render_view,
    shade,
    transform,
)
from mipnerf_cli.errors import MipNerfError


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def composite(rgba: np.ndarray) -> np.ndarray:
    x = rgba.astype(np.float32) / 255
    return x[..., :3] * x[..., 3:] + (1 - x[..., 3:])


SMALL = DemoSceneSpec(height=32, width=32, num_train=4, num_val=2, num_test=3, seed=0)


def test_cli_writes_a_blender_scene(tmp_path, mipnerf):
    out = tmp_path / "demo"
    result = mipnerf("demo-scene", out, "--size", 32, "--train", 4, "--val", 2, "--test", 3, "--seed", 0)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        meta = json.loads((out / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] == pytest.approx(0.6911112070083618)
        assert [f["file_path"] for f in meta["frames"]] == [f"./{split}/r_{i}" for i in range(count)]
        for frame in meta["frames"]:
            matrix = np.array(frame["transform_matrix"])
            assert matrix.shape == (4, 4)
            np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])
            np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-12)
        with Image.open(out / split / "r_0.png") as image:
            assert image.mode == "RGBA" and image.size == (32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left
    # The same seed gives the same bytes as the library call.
    make_demo_scene(tmp_path / "again", SMALL)
    assert files_of(out) == files_of(tmp_path / "again")


def test_deterministic_and_seeded(tmp_path):
    make_demo_scene(tmp_path / "a", SMALL)
    make_demo_scene(tmp_path / "b", SMALL)
    make_demo_scene(tmp_path / "c", DemoSceneSpec(height=32, width=32, num_train=4, num_val=2, num_test=3, seed=1))
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    a = json.loads((tmp_path / "a" / "transforms_train.json").read_text())
    c = json.loads((tmp_path / "c" / "transforms_train.json").read_text())
    assert a["frames"][0]["transform_matrix"] != c["frames"][0]["transform_matrix"]


def test_images_have_antialiased_alpha_and_load_and_convert(tmp_path):
    make_demo_scene(tmp_path / "scenes" / "demo", SMALL)
    with Image.open(tmp_path / "scenes" / "demo" / "train" / "r_0.png") as image:
        alpha = np.asarray(image)[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()
    assert ((alpha > 0) & (alpha < 255)).any()  # supersampled edges
    images = load_scene(tmp_path / "scenes" / "demo", "train")
    assert images.num_images == 4 and images.num_pixels == 4 * 32 * 32
    convert_blender(tmp_path / "scenes", tmp_path / "ms")
    multiscale = load_scene(tmp_path / "ms" / "demo", "train")
    assert multiscale.levels == [0, 1, 2, 3] * 4


def test_cameras_look_at_the_origin_from_radius_4():
    spec = DemoSceneSpec(num_train=20, num_val=5, num_test=8)
    poses = camera_poses(spec)
    for split, matrices in poses.items():
        assert len(matrices) == spec.views()[split]
        for matrix in matrices:
            eye = matrix[:3, 3]
            assert np.linalg.norm(eye) == pytest.approx(CAMERA_RADIUS)
            assert eye[2] > 0  # upper hemisphere
            forward = -matrix[:3, 2]
            np.testing.assert_allclose(forward, -eye / np.linalg.norm(eye), atol=1e-12)
    elevations = [math.degrees(math.asin(m[2, 3] / CAMERA_RADIUS)) for m in poses["test"]]
    np.testing.assert_allclose(elevations, 30)


def test_every_surface_lies_between_near_2_and_far_6():
    spec = DemoSceneSpec(height=48, width=48, num_train=12, num_val=1, num_test=1, seed=3)
    focal = focal_length(spec)
    y, x = np.mgrid[0:48, 0:48] + 0.5
    camera_dirs = np.stack([(x - 24) / focal, -(y - 24) / focal, -np.ones_like(x)], -1).reshape(-1, 3)
    hits = 0
    for pose in camera_poses(spec)["train"]:
        directions = transform(camera_dirs, pose[:3, :3])
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        _, distance = shade(pose[:3, 3], directions, palette(3))
        found = distance[np.isfinite(distance)]
        hits += found.size
        assert found.size > 0.15 * distance.size
        assert found.min() > 2.2 and found.max() < 5.8
    assert hits > 0


def test_texture_aliases_at_quarter_and_eighth_resolution():
    """Point-sampling one ray per pixel at low resolution (what NeRF does) is far from the
    area-averaged ground truth, and the gap grows as the resolution drops."""
    spec = DemoSceneSpec(num_train=4, num_val=1, num_test=1)
    poses = camera_poses(spec)["train"]
    colours = palette(0)
    error = {}
    for factor in (1, 4, 8):
        gaps = []
        for pose in poses:
            truth = (
                composite(render_view(pose, spec, colours))
                .reshape(64 // factor, factor, 64 // factor, factor, 3)
                .mean((1, 3))
            )
            point_sampled = composite(
                render_view(pose, DemoSceneSpec(height=64 // factor, width=64 // factor, supersample=1), colours)
            )
            gaps.append(np.abs(truth - point_sampled).mean())
        error[factor] = float(np.mean(gaps))
    assert error[4] > 0.07 and error[8] > 0.08, error
    assert error[8] > error[4] > error[1], error


def test_bad_sizes_and_counts():
    with pytest.raises(MipNerfError, match="--size must be at least 8"):
        make_demo_scene("/nonexistent/never", DemoSceneSpec(height=4, width=4))
    with pytest.raises(MipNerfError, match="--val must be at least 1"):
        make_demo_scene("/nonexistent/never", DemoSceneSpec(num_val=0))
    assert not Path("/nonexistent").exists()


def test_cli_refuses_to_replace_without_overwrite_or_a_non_scene(tmp_path, mipnerf):
    out = tmp_path / "demo"
    assert mipnerf("demo-scene", out, "--size", 16, "--train", 1, "--val", 1, "--test", 1).returncode == 0
    before = files_of(out)
    result = mipnerf("demo-scene", out, "--size", 16, "--train", 1, "--val", 1, "--test", 1, "--seed", 4)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already exists and is not empty; pass --overwrite" in result.stderr
    assert files_of(out) == before
    result = mipnerf("demo-scene", out, "--size", 16, "--train", 2, "--val", 1, "--test", 1, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert len(json.loads((out / "transforms_train.json").read_text())["frames"]) == 2
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("precious")
    result = mipnerf("demo-scene", other, "--overwrite", "--size", 16)
    assert result.returncode == 1
    assert "holds no transforms_train.json; refusing to replace it" in result.stderr
    assert (other / "chapter1.tex").read_text() == "precious"
    result = mipnerf("demo-scene", tmp_path / "tiny", "--size", 4)
    assert result.returncode == 1 and result.stderr.strip() == "error: --size must be at least 8 pixels, got 4x4"
    assert not (tmp_path / "tiny").exists()
