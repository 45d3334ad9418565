"""mip-NeRF as a nerfbaselines method (mipnerf_cli/nerfbaselines): nerfbaselines' own
`test-method` on a tiny procedural scene, the camera conversion against nerfbaselines' Blender
loader on lego, the multiscale loader against ours, settings, renders and checkpoints.

LPIPS: nerfbaselines computes it with AlexNet / VGG backbones that it downloads through
torchvision; nothing may be downloaded here, so `test-method` runs with nerfbaselines' LPIPS
function replaced, inside this test process only, by the mean absolute difference
(docs/nerfbaselines.md says so). Every other metric is nerfbaselines' own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

nerfbaselines = pytest.importorskip(
    "nerfbaselines", reason="the optional nerfbaselines package is not installed (make install puts it in)"
)

from mipnerf_cli.data.formats.blender import load_blender  # noqa: E402
from mipnerf_cli.data.formats.multiscale import load_multiscale  # noqa: E402
from mipnerf_cli.demo.scenes import DemoSceneSpec, make_demo_scene  # noqa: E402
from mipnerf_cli.errors import MipNerfError  # noqa: E402
from mipnerf_cli.nerfbaselines import cameras as nb_cameras  # noqa: E402
from mipnerf_cli.nerfbaselines.datasets import load_multiscale_blender  # noqa: E402
from mipnerf_cli.nerfbaselines.method import (  # noqa: E402
    CHECKPOINT_FILE,
    MipNerfFastMethod,
    MipNerfMethod,
    settings_from_overrides,
)

REPO = Path(__file__).resolve().parents[2]
BLENDER_LOADER = "nerfbaselines.datasets.blender:load_blender_dataset"
TINY = {"config": "demo", "batch_size": "64", "model.num_samples": "8", "model.netdepth": "2"}
# The grid model (mipnerf-fast, packaged config fast) made tiny; the occupancy grid refreshed every step.
TINY_FAST = {
    "batch_size": "64",
    "trimip.plane_resolution": "16",
    "trimip.plane_features": "4",
    "trimip.hidden": "16",
    "trimip.march_steps": "32",
    "trimip.occupancy_resolution": "8",
    "trimip.occupancy_interval": "1",
}


def write_tiny_scene(out: Path, size: int = 16) -> Path:
    """A procedural Blender scene (4 train, 2 test views) nerfbaselines loads with its Blender loader."""
    make_demo_scene(out, DemoSceneSpec(height=size, width=size, num_train=4, num_val=1, num_test=2, supersample=1))
    for split in ("train", "test"):  # the image size, which nerfbaselines' Blender loader reads (default 800)
        transforms = out / f"transforms_{split}.json"
        transforms.write_text(json.dumps({**json.loads(transforms.read_text()), "w": size, "h": size}))
    # No dataset id (so no public checkpoint is looked up); nerfbaselines' Blender loader and protocol.
    (out / "nb-info.json").write_text(
        json.dumps({"loader": BLENDER_LOADER, "evaluation_protocol": "nerf", "id": None, "scene": None})
    )
    return out


@pytest.fixture(autouse=True)
def torch_threads():
    """The demo config sets one torch thread for the process (Runtime.apply); later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def registered():
    """nerfbaselines' registry with this package's spec in it (from the installed entry point,
    else imported here, as the entry point would)."""
    from nerfbaselines import _registry

    _registry._auto_register()
    if "mipnerf" not in _registry.methods_registry:
        import mipnerf_cli.nerfbaselines.spec  # noqa: F401  (registers on import)
    return _registry


def load(scene: Path, split: str):
    from nerfbaselines.datasets import load_dataset

    return load_dataset(str(scene), split, features=frozenset({"color"}), load_features=True)


def stub_lpips(monkeypatch) -> None:
    """nerfbaselines' LPIPS (AlexNet/VGG weights, downloaded) -> mean absolute difference, here only."""
    import nerfbaselines.metrics as metrics

    monkeypatch.setattr(metrics, "_lpips", lambda a, b, net, version="0.1": np.abs(a - b).mean(axis=(-3, -2, -1)))


# ----------------------------------------------------------------------------- test-method


@pytest.mark.parametrize("method_id, overrides", [("mipnerf", TINY), ("mipnerf-fast", TINY_FAST)])
def test_nerfbaselines_test_method_passes(tmp_path, registered, monkeypatch, capfd, method_id, overrides):
    scene = write_tiny_scene(tmp_path / "scene")
    stub_lpips(monkeypatch)
    from nerfbaselines.cli import main

    args = ["test-method", "--method", method_id, "--data", str(scene), "--backend", "python", "--steps", "3"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    with pytest.raises(SystemExit) as exit_info:
        main(args, standalone_mode=False)
    printed = capfd.readouterr()
    summary = printed.out + printed.err
    assert exit_info.value.code == 0, summary[-3000:]
    for check in (
        "Train iteration passes",
        "Resaving method yields same checkpoint",
        "Restored model (without train dataset) matches original",
        "Restored model (with train dataset) matches original",
        "Checkpoint reproduces results",
        "Final evaluation works and matches predictions",
    ):
        assert check in summary


def test_entry_point_registers_the_method_and_the_loader():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '[project.entry-points."nerfbaselines.specs"]\nmipnerf = "mipnerf_cli.nerfbaselines.spec"\n' in pyproject
    assert '\nnerfbaselines = ["nerfbaselines>=1.2,<1.3"]\n' in pyproject
    from nerfbaselines._registry import collect_register_calls

    import mipnerf_cli.nerfbaselines.spec as spec

    calls: list = []
    with collect_register_calls(calls):
        nerfbaselines.register(spec.METHOD_SPEC)
        nerfbaselines.register(spec.LOADER_SPEC)
        nerfbaselines.register(spec.FAST_METHOD_SPEC)
    method, loader, fast = calls
    assert method["id"] == "mipnerf" and method["method_class"] == "mipnerf_cli.nerfbaselines.method:MipNerfMethod"
    assert fast["id"] == "mipnerf-fast"
    assert fast["method_class"] == "mipnerf_cli.nerfbaselines.method:MipNerfFastMethod"
    assert {name: preset["config"] for name, preset in fast["presets"].items()} == {
        "blender": "fast",
        "blender-multiscale": "fast",
    }
    assert fast["presets"]["blender-multiscale"]["@apply"] == [{"dataset": "blender-multiscale"}]
    assert {"blender", "llff", "blender-multiscale"} <= set(method["presets"])
    assert method["presets"]["blender"]["@apply"] == [{"dataset": "blender"}]
    assert method["metadata"]["paper_results"]["blender/lego"]["psnr"] == 35.70
    assert np.mean([r["psnr"] for r in method["metadata"]["paper_results"].values()]) == pytest.approx(33.09, abs=0.005)
    assert loader["load_dataset_function"] == "mipnerf_cli.nerfbaselines.datasets:load_multiscale_blender"


# ----------------------------------------------------------------------------- cameras


def test_cameras_match_nerfbaselines_blender_loader_on_lego(tmp_path, lego_dir):
    """nerfbaselines' own Blender loader -> our conversion gives the rays and pixels our Blender loader gives."""
    from nerfbaselines.datasets import dataset_load_features
    from nerfbaselines.datasets.blender import load_blender_dataset

    scene = tmp_path / "lego2"
    scene.mkdir()
    meta = json.loads((lego_dir / "transforms_test.json").read_text())
    meta["frames"] = meta["frames"][:2]
    for frame in meta["frames"]:
        frame["file_path"] = str(lego_dir / frame["file_path"])
    (scene / "transforms_test.json").write_text(json.dumps(meta))

    theirs = dataset_load_features(load_blender_dataset(str(scene), "test"), show_progress=False)
    ours = load_blender(scene, "test")
    converted = nb_cameras.dataset_image_set(theirs)
    # Poses: their OpenCV matrices turned back are the file's OpenGL ones (float32 in their loader).
    np.testing.assert_array_equal(converted.cam2world.numpy(), ours.cam2world.numpy().astype(np.float32))
    assert (converted.near, converted.far, converted.white_bkgd) == (2.0, 6.0, True)
    for i in range(2):
        rays, colours = converted.image_rays(i)
        expected_rays, expected_colours = ours.image_rays(i)
        torch.testing.assert_close(colours, expected_colours, rtol=0, atol=0)
        for name, tensor in rays.tensors().items():
            torch.testing.assert_close(tensor, getattr(expected_rays, name), rtol=1e-6, atol=1e-6, msg=name)
        # A camera alone (render's path) gives the same rays.
        alone, height, width = nb_cameras.camera_rays(theirs["cameras"][i], (2.0, 6.0))
        assert (height, width) == (800, 800)
        torch.testing.assert_close(alone.directions, rays.directions, rtol=0, atol=0)


def test_conversion_refuses_what_it_cannot_render():
    cameras = nerfbaselines.new_cameras(
        poses=np.eye(4)[None, :3].astype(np.float32),
        intrinsics=np.array([[10.0, 10.0, 8.0, 8.0]], dtype=np.float32),
        camera_models=np.array([1], dtype=np.int32),  # opencv
        image_sizes=np.array([[16, 16]], dtype=np.int32),
        distortion_parameters=np.array([[0.1, 0, 0, 0]], dtype=np.float32),
        nears_fars=np.array([[1.0, 3.0]], dtype=np.float32),
    )
    with pytest.raises(MipNerfError, match="pinhole cameras without distortion"):
        nb_cameras.camera_rays(cameras, (1.0, 3.0))
    with pytest.raises(MipNerfError, match="white or black only"):
        nb_cameras.white_background({"background_color": np.array([0, 255, 0], dtype=np.uint8)})
    assert nb_cameras.white_background({"background_color": None}) is False
    assert nb_cameras.near_far(cameras) == (1.0, 3.0)


def test_black_background_composites_rgba_on_black():
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255]]], dtype=np.uint8)
    out = nb_cameras.rgba_image(rgba, white_bkgd=False).numpy()
    np.testing.assert_array_equal(out[0, 0], [100, 50, 25, 255])
    np.testing.assert_array_equal(out[0, 1], [10, 20, 30, 255])
    np.testing.assert_array_equal(nb_cameras.rgba_image(rgba, white_bkgd=True).numpy(), rgba)


def test_multiscale_loader_matches_ours(tmp_path):
    from nerfbaselines.datasets import dataset_load_features

    from mipnerf_cli.convert.multiscale import convert_blender

    make_demo_scene(
        tmp_path / "blender" / "demo",
        DemoSceneSpec(height=16, width=16, num_train=2, num_val=1, num_test=1, supersample=1),
    )
    (scene,) = convert_blender(tmp_path / "blender", tmp_path / "multiscale", n_down=2)
    theirs = dataset_load_features(load_multiscale_blender(str(scene), "train"), show_progress=False)
    ours = load_multiscale(scene, "train")
    converted = nb_cameras.dataset_image_set(theirs)
    assert converted.widths == ours.widths and set(ours.widths) == {16, 8}
    torch.testing.assert_close(converted.lossmult, ours.lossmult, rtol=0, atol=0)
    assert sorted(set(converted.lossmult.tolist())) == [1.0, 4.0]
    torch.testing.assert_close(converted.pix2cam, ours.pix2cam, rtol=1e-6, atol=1e-9)
    for i in range(ours.num_images):
        rays, colours = converted.image_rays(i)
        expected_rays, expected_colours = ours.image_rays(i)
        torch.testing.assert_close(colours, expected_colours, rtol=0, atol=0)
        for name, tensor in rays.tensors().items():
            torch.testing.assert_close(tensor, getattr(expected_rays, name), rtol=1e-6, atol=1e-6, msg=name)
    with pytest.raises(nerfbaselines.DatasetNotFoundError):
        load_multiscale_blender(str(tmp_path / "blender" / "demo"), "train")


# ----------------------------------------------------------------------------- method


def test_settings_from_overrides():
    settings = settings_from_overrides({"config": "demo", "max_steps": "7", "model.num_samples": "5"})
    assert (settings.max_steps, settings.model.num_samples, settings.model.netwidth) == (7, 5, 64)
    assert settings_from_overrides({"seed": 3}, base={"seed": 1, "max_steps": 9}).max_steps == 9
    with pytest.raises(MipNerfError, match="max_steps"):
        settings_from_overrides({"max_steps": "many"})
    with pytest.raises(MipNerfError, match="not found"):
        settings_from_overrides({"config": "no-such-config"})


def test_renders_are_deterministic_and_checkpoints_resave_identically(tmp_path):
    scene = write_tiny_scene(tmp_path / "scene", size=8)
    train, test = load(scene, "train"), load(scene, "test")
    method = MipNerfMethod(train_dataset=train, config_overrides=TINY)
    stats = [method.train_iteration(step) for step in range(2)]
    assert all(np.isfinite(s["loss"]) for s in stats) and stats[0]["num_rays"] == 64
    camera = test["cameras"][0]
    first, second = method.render(camera), method.render(camera)
    assert first["color"].shape == (8, 8, 3) and first["depth"].shape == (8, 8)
    for key in ("color", "depth", "accumulation"):
        np.testing.assert_array_equal(first[key], second[key])
    method.save(str(tmp_path / "a"))
    reloaded = MipNerfMethod(checkpoint=str(tmp_path / "a"))
    assert reloaded.get_info()["loaded_step"] == 2
    reloaded.save(str(tmp_path / "b"))
    assert (tmp_path / "a" / CHECKPOINT_FILE).read_bytes() == (tmp_path / "b" / CHECKPOINT_FILE).read_bytes()
    np.testing.assert_array_equal(reloaded.render(camera)["color"], first["color"])
    with pytest.raises(MipNerfError, match="without a train dataset"):
        reloaded.train_iteration(2)
    # Resumed with the train dataset, step 2 is the uninterrupted run's step 2.
    resumed = MipNerfMethod(checkpoint=str(tmp_path / "a"), train_dataset=train, config_overrides=TINY)
    assert resumed.train_iteration(2) == pytest.approx(method.train_iteration(2))
    for name, value in method.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)


def test_fast_method_drives_the_occupancy_grid_and_resaves_identically(tmp_path):
    """mipnerf-fast: the packaged config fast (the grid model) unless `config` says otherwise;
    each train_iteration runs the model's before_step hook as `mipnerf train` does (the
    occupancy grid of step 1 is a fresh model's after before_step(1)); deterministic renders;
    a reloaded checkpoint saves to the same bytes and resumes the uninterrupted run."""
    from mipnerf_cli.training import build_model

    assert settings_from_overrides(TINY_FAST, default_config="fast").model_family == "trimip"
    assert settings_from_overrides({**TINY_FAST, "config": "demo"}, default_config="fast").model_family == "mipnerf"
    scene = write_tiny_scene(tmp_path / "scene", size=8)
    train, test = load(scene, "train"), load(scene, "test")
    method = MipNerfFastMethod(train_dataset=train, config_overrides=TINY_FAST)
    assert method.get_info()["hparams"]["model_family"] == "trimip"
    assert (method.settings.lr_init, method.settings.trimip.plane_resolution) == (1.0e-2, 16)
    fresh = build_model(method.settings)
    fresh.before_step(1)
    assert not method.model.occupancy_ema.any() and fresh.occupancy_ema.any()  # the hook fills the grid
    method.train_iteration(0)
    torch.testing.assert_close(method.model.occupancy_ema, fresh.occupancy_ema, rtol=0, atol=0)
    torch.testing.assert_close(method.model.occupied, fresh.occupied, rtol=0, atol=0)
    grid = method.model.occupancy_ema.clone()
    method.train_iteration(1)  # occupancy_interval 1: step 2 updates the grid again
    assert not torch.equal(method.model.occupancy_ema, grid)

    camera = test["cameras"][0]
    first, second = method.render(camera), method.render(camera)
    for key in ("color", "depth", "accumulation"):
        np.testing.assert_array_equal(first[key], second[key])
    method.save(str(tmp_path / "a"))
    reloaded = MipNerfFastMethod(checkpoint=str(tmp_path / "a"))
    assert reloaded.get_info()["loaded_step"] == 2 and reloaded.settings.model_family == "trimip"
    reloaded.save(str(tmp_path / "b"))
    assert (tmp_path / "a" / CHECKPOINT_FILE).read_bytes() == (tmp_path / "b" / CHECKPOINT_FILE).read_bytes()
    np.testing.assert_array_equal(reloaded.render(camera)["color"], first["color"])
    resumed = MipNerfFastMethod(checkpoint=str(tmp_path / "a"), train_dataset=train, config_overrides=TINY_FAST)
    assert resumed.train_iteration(2) == pytest.approx(method.train_iteration(2))
    for name, value in method.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)


# ----------------------------------------------------------------------------- mipnerf render / eval


def test_mipnerf_render_reads_a_nerfbaselines_trajectory_and_checkpoint(tmp_path, mipnerf):
    """A trajectory written by nerfbaselines' own writer, rendered by `mipnerf render` from the
    method's checkpoint: the frames are the method's renders."""
    import imageio.v3 as iio
    from nerfbaselines.io import save_trajectory

    scene = write_tiny_scene(tmp_path / "scene", size=16)
    train, test = load(scene, "train"), load(scene, "test")
    method = MipNerfMethod(train_dataset=train, config_overrides=TINY)
    for step in range(2):
        method.train_iteration(step)
    method.save(str(tmp_path / "ckpt"))
    cameras = test["cameras"]
    frames = [
        {"pose": cameras.poses[i], "intrinsics": cameras.intrinsics[i], "appearance_weights": np.zeros(0)}
        for i in range(2)
    ]
    trajectory = {"camera_model": "pinhole", "image_size": (16, 16), "fps": 10.0, "frames": frames, "source": None}
    with open(tmp_path / "trajectory.json", "w") as file:
        save_trajectory(trajectory, file)
    result = mipnerf(
        "render", "--ckpt", str(tmp_path / "ckpt" / CHECKPOINT_FILE), "--path", str(tmp_path / "trajectory.json"),
        "--format", "png", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 frames of 16×16" in result.stdout
    for i in range(2):
        expected = np.round(method.render(cameras[i])["color"] * 255).astype(np.uint8)
        np.testing.assert_array_equal(iio.imread(tmp_path / "out" / "frames" / f"rgb_{i:04d}.png"), expected)


def test_mipnerf_eval_reports_the_numbers_of_nerfbaselines_protocol(tmp_path, monkeypatch):
    """`mipnerf eval` on the method's checkpoint: its 8-bit numbers are what nerfbaselines'
    own protocol ("nerf", images truncated to uint8) gives the method's renders."""
    from nerfbaselines.datasets import dataset_index_select
    from nerfbaselines.evaluation import build_evaluation_protocol

    from mipnerf_cli.evaluation import evaluate
    from mipnerf_cli.settings import EvalSettings

    stub_lpips(monkeypatch)
    scene = write_tiny_scene(tmp_path / "scene", size=24)
    train, test = load(scene, "train"), load(scene, "test")
    method = MipNerfMethod(train_dataset=train, config_overrides=TINY)
    for step in range(3):
        method.train_iteration(step)
    method.save(str(tmp_path / "ckpt"))
    settings = EvalSettings(ckpt=tmp_path / "ckpt" / CHECKPOINT_FILE, device="cpu", progress=False, out=tmp_path / "e")
    results, _ = evaluate(settings)
    protocol = build_evaluation_protocol("nerf")
    for i, row in enumerate(results.images):
        theirs = protocol.evaluate(method.render(test["cameras"][i]), dataset_index_select(test, [i]))
        assert row.psnr_uint8 == pytest.approx(theirs["psnr"], abs=1e-3)
        assert row.ssim_uint8 == pytest.approx(theirs["ssim"], abs=1e-4)
        assert row.psnr != pytest.approx(row.psnr_uint8, abs=1e-3)  # the two protocols differ
