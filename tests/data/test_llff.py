"""LLFF scenes: the loader against google/mipnerf's LLFF output (tests/golden/llff), the
bad-input refusals and train -> eval -> render of a forward-facing demo scene via the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from golden import GOLDEN as ALL_GOLDEN
from tiny import tiny_settings

from mipnerf_cli.data import load_scene

GOLDEN = ALL_GOLDEN / "llff"
SCENE = GOLDEN / "llff_scene"
FIELDS = ("origins", "directions", "viewdirs", "radii", "lossmult", "near", "far")


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN / "llff_rays.npz")


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("spherify", [False, True])
@pytest.mark.parametrize("factor", [0, 2])
def test_loader_matches_reference(golden, factor, spherify, split):
    tag = f"{split}_factor{factor}_spherify_{str(spherify).lower()}"
    # The reference keeps the config's near 0 / far 1 with spherify; ours derives bounds unless told.
    bounds = {"near": 0.0, "far": 1.0} if spherify else {}
    images = load_scene(SCENE, split, white_bkgd=False, factor=factor, spherify=spherify, **bounds)
    assert images.num_images == golden[f"pixels_{tag}"].shape[0]
    np.testing.assert_allclose(images.cam2world.numpy(), golden[f"camtoworlds_{tag}"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(images.focal.numpy(), float(golden[f"focal_{tag}"]), rtol=0, atol=1e-5)
    for i in range(images.num_images):
        rays, colours = images.image_rays(i)
        h, w = images.heights[i], images.widths[i]
        assert np.array_equal(colours.numpy().reshape(h, w, 3), golden[f"pixels_{tag}"][i])
        for name in FIELDS:
            ours = getattr(rays, name).numpy().reshape(h, w, -1)
            np.testing.assert_allclose(ours, golden[f"{name}_{tag}"][i], rtol=0, atol=1e-5, err_msg=name)
    if split == "test":
        np.testing.assert_allclose(images.render_poses.numpy(), golden[f"render_poses_{tag}"], rtol=0, atol=1e-5)
        if not spherify:
            for j, pick in enumerate(golden["render_pick"]):
                rays = images.pose_rays(
                    images.render_poses[pick], images.widths[0], images.heights[0], float(images.focal[0])
                )
                for name in FIELDS:
                    ours = getattr(rays, name).numpy().reshape(images.heights[0], images.widths[0], -1)
                    np.testing.assert_allclose(ours, golden[f"render_{name}_{tag}"][j], rtol=0, atol=1e-5, err_msg=name)


def test_spherify_bounds_come_from_the_scene():
    images = load_scene(SCENE, "train", white_bkgd=False, spherify=True)
    assert 0 < images.near < images.far
    forward = load_scene(SCENE, "train", white_bkgd=False)
    assert (forward.near, forward.far) == (0.0, 1.0)


# ----------------------------------------------------------------------------- bad input


def _copy(tmp_path: Path) -> Path:
    scene = tmp_path / "scene"
    shutil.copytree(SCENE, scene)
    return scene


def _poses(scene: Path, change) -> None:
    array = np.load(scene / "poses_bounds.npy")
    np.save(scene / "poses_bounds.npy", change(array))


def _set(array, index, value):
    array = array.copy()
    array[index] = value
    return array


CASES = {
    "no poses_bounds.npy": (lambda s: (s / "poses_bounds.npy").unlink(), [], ["poses_bounds.npy", "imgs2poses"]),
    "count mismatch": (lambda s: _poses(s, lambda a: a[:-1]), [], ["16 poses but 17 images"]),
    "near <= 0": (lambda s: _poses(s, lambda a: _set(a, (3, 15), 0.0)), [], ["row 3", "near bound"]),
    "non-finite": (lambda s: _poses(s, lambda a: _set(a, (5, 3), np.nan)), [], ["row 5", "NaN"]),
    "sizes differ": (
        lambda s: shutil.copy(s / "images_2" / "IMG_0004.png", s / "images" / "IMG_0004.png"),
        [],
        ["IMG_0004.png", "same size"],
    ),
    "missing images_4": (lambda s: None, ["--factor", "4"], ["images_4", "create it"]),
    "llffhold too large": (lambda s: None, ["--config", "HOLD"], ["llffhold 40", "17 images"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_llff_input_is_refused(case, tmp_path, mipnerf):
    prepare, flags, fragments = CASES[case]
    scene = _copy(tmp_path)
    prepare(scene)
    hold = tmp_path / "hold.yaml"
    hold.write_text("llffhold: 40\n")
    flags = [str(hold) if flag == "HOLD" else flag for flag in flags]
    before = snapshot(tmp_path)
    result = mipnerf(
        "train", "--data", scene, "--out-dir", tmp_path / "runs", "--max-steps", 1, "--device", "cpu", *flags
    )
    assert_refused(result, *fragments)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- end to end

TINY = yaml.safe_dump(
    tiny_settings(
        model={"ray_shape": "cylinder", "density_noise": 1.0},
        factor=2,
        white_bkgd=False,
        batch_size=32,
        max_steps=2,
        check_interval=2,
        log_interval=1,
        lr_delay_steps=0,
        val_views=1,
    )
)


def test_forward_facing_demo_train_eval_render(tmp_path, mipnerf):
    scene = tmp_path / "ff"
    result = mipnerf("demo-scene", scene, "--kind", "forward-facing", "--size", 16, "--train", 9)
    assert result.returncode == 0, result.stderr
    bounds = np.load(scene / "poses_bounds.npy")
    assert bounds.shape == (9, 17) and (bounds[:, 15] > 0).all() and (bounds[:, 16] > bounds[:, 15]).all()
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    result = mipnerf(
        "train",
        "--config",
        config,
        "--data",
        scene,
        "--out-dir",
        tmp_path / "runs",
        "--exp-name",
        "ff",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "ff"
    result = mipnerf("eval", "--run", run, "--no-progress", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    import json

    results = json.loads(next((run / "eval").glob("*/results.json")).read_text())
    assert "psnr" in json.dumps(results)
    result = mipnerf("render", "--run", run, "--frames", 2, "--format", "png", "--no-progress", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    frames = sorted((run / "render" / "spiral" / "frames").glob("rgb_*.png"))
    assert len(frames) == 2
    # The spiral's cameras.json renders the same frames again (world-frame poses, NDC rays).
    cameras = run / "render" / "spiral" / "cameras.json"
    assert len(json.loads(cameras.read_text())["camera_path"]) == 2
    again = tmp_path / "again"
    result = mipnerf(
        "render", "--run", run, "--path", cameras, "--format", "png", "--no-progress", "--device", "cpu", "--out", again
    )
    assert result.returncode == 0, result.stderr
    repeated = sorted((again / "frames").glob("rgb_*.png"))
    assert [p.read_bytes() for p in repeated] == [p.read_bytes() for p in frames]
    result = mipnerf("render", "--run", run, "--path", "spheric", "--frames", 1, "--device", "cpu")
    assert_refused(result, "--path spheric", "--path spiral")
