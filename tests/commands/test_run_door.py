"""`runs.trained`, the one door from a run folder or a checkpoint to its model, scene and cameras:
the same answer from a folder and from its checkpoint, the cameras without a decoded pixel, the
NDC rule, and the same one-line refusal of a scene of another kind for eval, render, view, export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from golden import GOLDEN
from tiny_runs import BLENDER, MULTISCALE, make_run, one_cpu_thread  # noqa: F401

from mipnerf_cli.data import load_scene
from mipnerf_cli.data.formats.llff import pose_rays
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runs.trained import load_trained_model

LLFF_SCENE = GOLDEN / "llff" / "llff_scene"  # 17 images, 36x24
CPU = torch.device("cpu")


def _llff_run(tmp_path, spherify: bool):
    from mipnerf_cli.runs import checkpoints

    run = make_run(tmp_path, multiscale=False, exp_name="llff", data=LLFF_SCENE, factor=2, spherify=spherify)
    payload = checkpoints.load_checkpoint(run / "ckpt" / "last.pt")
    payload["scene"]["kind"] = "llff"
    checkpoints.save_step(run / "ckpt", payload, keep=1)
    return run


@pytest.fixture(scope="module")
def blender_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), multiscale=False, data=BLENDER, downscale=2)


def test_a_checkpoint_file_and_its_run_folder_open_the_same_run(blender_run):
    by_folder = load_trained_model(blender_run, None, CPU)
    by_file = load_trained_model(None, blender_run / "ckpt" / "last.pt", CPU)
    for field in ("checkpoint_path", "run_dir", "step", "exp_name", "kind", "white_bkgd", "data_path", "settings"):
        assert getattr(by_folder, field) == getattr(by_file, field), field
    for name, weight in by_folder.model.state_dict().items():
        assert torch.equal(weight, by_file.model.state_dict()[name]), name
    assert by_folder.scene() == by_file.scene()
    one, other = by_folder.scene().cameras("train"), by_file.scene().cameras("test")
    assert torch.equal(one.cam2world, by_file.scene().cameras("train").cam2world)
    assert one.split == "train" and other.split == "test"


def _no_decoding(monkeypatch):
    """Make every pixel decoder fail: what runs must not need one."""

    def refuse(*args, **kwargs):
        raise AssertionError("a pixel was decoded")

    from mipnerf_cli.data import images
    from mipnerf_cli.data.formats import blender, llff, multiscale

    for module in (images, blender, multiscale, llff):
        for name in ("read_rgba", "load_rgba_into"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def test_cameras_match_the_loaded_split_without_decoding_a_pixel(blender_run, tmp_path, monkeypatch):
    runs = {
        "blender": (blender_run, {"downscale": 2}),
        "multiscale": (make_run(tmp_path / "m", multiscale=True), {"multiscale": True}),
        "llff": (_llff_run(tmp_path / "l", spherify=False), {"factor": 2, "white_bkgd": False}),
    }
    expected = {
        kind: load_scene(trained_scene_folder(run), "train", **options) for kind, (run, options) in runs.items()
    }
    _no_decoding(monkeypatch)
    for kind, (run, _) in runs.items():
        cameras = load_trained_model(run, None, CPU).scene().cameras("train")
        images = expected[kind]
        assert cameras.kind == kind
        assert torch.equal(cameras.cam2world, images.cam2world), kind
        assert torch.equal(cameras.focals, images.focal), kind
        assert (cameras.widths, cameras.heights, cameras.levels) == (images.widths, images.heights, images.levels)
        assert (cameras.near, cameras.far) == (images.near, images.far)
    assert runs["blender"][0] and expected["blender"].widths[0] == 32  # the run's downscale 2: 64 -> 32


def trained_scene_folder(run):
    return load_trained_model(run, None, CPU).data_path


def test_the_ndc_rule_is_decided_by_the_door(blender_run, tmp_path):
    forward = load_trained_model(_llff_run(tmp_path / "f", spherify=False), None, CPU).scene()
    around = load_trained_model(_llff_run(tmp_path / "s", spherify=True), None, CPU).scene()
    blender = load_trained_model(blender_run, None, CPU).scene()
    assert (forward.ndc, around.ndc, blender.ndc) == (True, False, False)
    assert (forward.spherify, around.spherify, forward.factor) == (False, True, 2)
    assert forward.cameras().ndc and (forward.cameras().near, forward.cameras().far) == (0.0, 1.0)


def test_pose_rays_in_ndc_are_the_training_rays():
    images = load_scene(LLFF_SCENE, "train", white_bkgd=False, factor=2)
    for i in (0, 5):
        trained, _ = images.image_rays(i)
        ours = pose_rays(
            images.cam2world[i], images.widths[i], images.heights[i], float(images.focal[i]), 0.0, 1.0, True
        )
        for field in dataclasses.fields(trained):
            np.testing.assert_array_equal(getattr(ours, field.name), getattr(trained, field.name), err_msg=field.name)


def test_a_split_without_full_resolution_images_is_an_error_not_an_index_error(tmp_path):
    cameras = load_trained_model(make_run(tmp_path, multiscale=True), None, CPU).scene().cameras("train")
    coarse = dataclasses.replace(cameras, levels=[level + 1 for level in cameras.levels])
    with pytest.raises(MipNerfError, match="no full-resolution images"):
        coarse.full_resolution()
    assert cameras.full_resolution().levels == [0] * cameras.levels.count(0)


@pytest.mark.parametrize(
    "command",
    [
        ("eval", "--run", "{run}", "--limit", "1"),
        ("render", "--run", "{run}", "--frames", "1"),
        ("view", "{run}", "--port", "{port}"),
        ("export", "{run}", "--resolution", "8"),
    ],
    ids=["eval", "render", "view", "export"],
)
def test_a_scene_of_another_kind_is_refused_in_the_same_line_by_every_command(blender_run, mipnerf, command):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [part.format(run=blender_run, port=port) for part in command]
    before = snapshot(blender_run)
    line = assert_refused(mipnerf(*args, "--data", MULTISCALE, "--device", "cpu"), str(MULTISCALE))
    assert line == (
        f"error: {MULTISCALE} is a multiscale scene but checkpoint {blender_run / 'ckpt' / 'last.pt'} was trained "
        "on a single-scale (Blender) scene; pass --data with a scene of the same kind"
    )
    assert snapshot(blender_run) == before
