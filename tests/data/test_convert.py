"""`mipnerf convert`: bit-exact against google/mipnerf's converter (golden output), non-square
scenes, output layout and the staged (all-or-nothing) write."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mipnerf_cli.convert.multiscale import (
    _fast_down2,
    _fast_down2_is_exact,
    _reference_down2,
    convert_blender,
    image_levels,
)
from mipnerf_cli.demo.scenes import DemoSceneSpec, make_demo_scene


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def pngs_under(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*.png"))


def reference_levels(pixels: np.ndarray, n_down: int) -> list[np.ndarray]:
    """The converter's arithmetic written out independently: float32 /255, truncating
    uint8(x*255), float32 mean over a [H/2, 2, W/2, 2, C] reshape."""
    image = np.array(pixels, dtype=np.float32) / 255.0
    out = []
    for _ in range(n_down):
        out.append(np.uint8(image * 255))
        shape = image.shape
        if shape[0] % 2 == 0 and shape[1] % 2 == 0:
            image = np.mean(np.reshape(image, [shape[0] // 2, 2, shape[1] // 2, 2, -1]), (1, 3))
    return out


def test_golden_scene_converts_bit_exact(tmp_path, golden_dir, mipnerf):
    out = tmp_path / "out"
    result = mipnerf("convert", golden_dir / "convert" / "input", out, "--n-down", 4)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    expected, got = golden_dir / "convert" / "output" / "tiny", out / "tiny"
    # Same bytes (key order, indent=4, float repr), hence the same values.
    assert (got / "metadata.json").read_bytes() == (expected / "metadata.json").read_bytes()
    assert json.loads((got / "metadata.json").read_text()) == json.loads((expected / "metadata.json").read_text())
    assert pngs_under(got) == pngs_under(expected)
    assert len(pngs_under(got)) == 3 * 4 * 4
    for relative in pngs_under(expected):
        want, have = read_png(expected / relative), read_png(got / relative)
        assert have.dtype == want.dtype == np.uint8
        assert have.shape == want.shape, relative
        np.testing.assert_array_equal(have, want, err_msg=str(relative))
    # Nothing but the scene was written (no leftover staging folders).
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_golden_level0_equals_input_and_rgba_is_kept(golden_dir, tmp_path):
    convert_blender(golden_dir / "convert" / "input", tmp_path / "out")
    source = read_png(golden_dir / "convert" / "input" / "tiny" / "train" / "r_2.png")
    level0 = read_png(tmp_path / "out" / "tiny" / "images_train" / "002_d0.png")
    assert source.shape == (64, 64, 4)
    np.testing.assert_array_equal(level0, source)
    assert 0 < (source[..., 3] == 0).mean() < 1  # the fixture has transparent and opaque parts


def test_fast_2x2_mean_is_the_reference_mean():
    assert _fast_down2_is_exact()
    rng = np.random.default_rng(3)
    for shape in [(64, 64, 4), (48, 80, 4), (2, 2, 4), (128, 32, 4)]:
        image = (rng.integers(0, 256, shape).astype(np.float32) / 255.0) * rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(_fast_down2(image), _reference_down2(image))
        pixels = rng.integers(0, 256, shape).astype(np.uint8)
        levels = image_levels(pixels, 2)
        for have, want in zip(levels, reference_levels(pixels, 2)):
            np.testing.assert_array_equal(have, want)


def test_truncation_not_rounding():
    # (3 + 4 + 4 + 4) / 4 = 3.75 (in units of 1/255): truncation gives 3, rounding would give 4.
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[..., 0] = [[3, 4], [4, 4]]
    assert image_levels(pixels, 2)[1][0, 0, 0] == 3


@pytest.fixture(scope="module")
def non_square_scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nonsquare")
    make_demo_scene(
        root / "scenes" / "wide", DemoSceneSpec(height=24, width=40, num_train=3, num_val=1, num_test=2, seed=5)
    )
    return root / "scenes"


def test_non_square_scene(non_square_scene, tmp_path, mipnerf):
    out = tmp_path / "ms"
    result = mipnerf("convert", non_square_scene, out, "--n-down", 4)
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "wide" / "metadata.json").read_text())
    transforms = json.loads((non_square_scene / "wide" / "transforms_train.json").read_text())
    focal = 0.5 * 40 / math.tan(0.5 * transforms["camera_angle_x"])
    train = meta["train"]
    assert list(meta) == ["train", "val", "test"]
    assert list(train) == [
        "file_path",
        "cam2world",
        "width",
        "height",
        "focal",
        "label",
        "near",
        "far",
        "lossmult",
        "pix2cam",
    ]
    assert len(train["file_path"]) == 3 * 4
    assert train["width"][:4] == [40, 20, 10, 5]
    assert train["height"][:4] == [24, 12, 6, 3]
    assert train["label"][:4] == [0, 1, 2, 3]
    assert train["lossmult"][:4] == [1.0, 4.0, 16.0, 64.0]
    assert set(train["near"]) == {2.0} and set(train["far"]) == {6.0}
    for k in range(4):
        f = train["focal"][k]
        assert f == pytest.approx(focal / 2**k, rel=1e-12)
        w, h = train["width"][k], train["height"][k]
        np.testing.assert_allclose(
            train["pix2cam"][k], [[1 / f, 0, -w / 2 / f], [0, -1 / f, h / 2 / f], [0, 0, -1]], rtol=1e-12
        )
    assert train["cam2world"][4] == transforms["frames"][1]["transform_matrix"]
    for i in range(3):
        source = read_png(non_square_scene / "wide" / "train" / f"r_{i}.png")
        for level, want in enumerate(reference_levels(source, 4)):
            have = read_png(out / "wide" / "images_train" / f"{i:03d}_d{level}.png")
            assert have.shape == (24 >> level, 40 >> level, 4)
            np.testing.assert_array_equal(have, want)


def test_single_scene_folder_goes_to_out_dir_slash_name(golden_dir, tmp_path, mipnerf):
    result = mipnerf(
        "convert", golden_dir / "convert" / "input" / "tiny", tmp_path / "out", "--n-down", 2, "--workers", 1
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "tiny" / "metadata.json").read_text())
    assert meta["val"]["file_path"] == [f"images_val/{i:03d}_d{j}.png" for i in range(4) for j in range(2)]
    assert len(pngs_under(tmp_path / "out" / "tiny")) == 3 * 4 * 2


def test_existing_out_dir_keeps_its_other_content_and_overwrite_replaces(golden_dir, tmp_path, mipnerf):
    out = tmp_path / "out"
    (out / "other").mkdir(parents=True)
    (out / "other" / "keep.txt").write_text("mine")
    convert_blender(golden_dir / "convert" / "input", out, n_down=2)
    assert (out / "other" / "keep.txt").read_text() == "mine"
    stale = out / "tiny" / "stale.txt"
    stale.write_text("old")
    result = mipnerf("convert", golden_dir / "convert" / "input", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert len(pngs_under(out / "tiny")) == 3 * 4 * 4
    assert sorted(p.name for p in out.iterdir()) == ["other", "tiny"]


def test_thread_count_does_not_change_output(golden_dir, tmp_path):
    one = convert_blender(golden_dir / "convert" / "input", tmp_path / "one", workers=1)[0]
    two = convert_blender(golden_dir / "convert" / "input", tmp_path / "two", workers=3)[0]
    assert (one / "metadata.json").read_bytes() == (two / "metadata.json").read_bytes()
    for relative in pngs_under(one):
        np.testing.assert_array_equal(read_png(one / relative), read_png(two / relative))


def test_progress_is_reported_per_image(golden_dir, tmp_path):
    calls = []
    convert_blender(
        golden_dir / "convert" / "input", tmp_path / "out", n_down=1, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(k, 12) for k in range(1, 13)]


def test_cli_prints_summary_and_help(golden_dir, tmp_path, mipnerf):
    result = mipnerf("convert", golden_dir / "convert" / "input", tmp_path / "out")
    assert result.returncode == 0
    assert "tiny: train 4, val 4, test 4 images of 64x64" in result.stdout
    assert "converted 12 images x 4 scales" in result.stdout
    help_text = mipnerf("convert", "-h").stdout
    for option in ("--n-down", "--overwrite", "--workers"):
        assert option in help_text
