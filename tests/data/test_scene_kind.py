"""One scene-kind check (data.scene.check_scene_kind) with one message, whoever asks:
`mipnerf train`'s check before anything is written, and the scene loader."""

from __future__ import annotations

import pytest
from golden import GOLDEN
from tiny_runs import BLENDER, MULTISCALE

from mipnerf_cli import training
from mipnerf_cli.data import load_scene
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.settings import resolve_train_settings

LLFF = GOLDEN / "llff" / "llff_scene"

CASES = {
    # name: (scene, train overrides == load_scene options, fragments of the one message)
    "multiscale without --multiscale": (
        MULTISCALE,
        {"multiscale": False},
        ["is a multiscale scene", "add --multiscale"],
    ),
    "multiscale with --downscale": (
        MULTISCALE,
        {"multiscale": True, "downscale": 2},
        ["is a multiscale scene with its own levels", "drop --downscale"],
    ),
    "blender with --multiscale": (
        BLENDER,
        {"multiscale": True},
        ["is a single-scale Blender scene", "drop --multiscale", "mipnerf convert"],
    ),
    "blender with --factor": (
        BLENDER,
        {"factor": 2},
        ["is a Blender scene, not an LLFF one", "drop --factor/--spherify"],
    ),
    "multiscale with --spherify": (
        MULTISCALE,
        {"multiscale": True, "spherify": True},
        ["is a multiscale scene, not an LLFF one", "drop --factor/--spherify"],
    ),
    "llff with --downscale": (LLFF, {"downscale": 2}, ["is an LLFF scene (poses_bounds.npy); drop --downscale ("]),
    "llff with --multiscale": (
        LLFF,
        {"multiscale": True},
        ["is an LLFF scene (poses_bounds.npy); drop --multiscale ("],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_and_the_loader_refuse_a_kind_mismatch_with_the_same_message(case, tmp_path):
    scene, options, fragments = CASES[case]
    settings = resolve_train_settings(None, {"data": scene, "out_dir": tmp_path, "device": "cpu", **options})
    with pytest.raises(MipNerfError) as from_train:
        training.check_scene(settings)
    with pytest.raises(MipNerfError) as from_loader:
        load_scene(scene, "train", **options)
    message = str(from_train.value)
    assert message == str(from_loader.value)
    assert message.startswith(str(scene)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before anything was written


def test_matching_options_pass_the_check(tmp_path):
    for scene, options, kind in (
        (BLENDER, {"downscale": 2}, "blender"),
        (MULTISCALE, {"multiscale": True}, "multiscale"),
        (LLFF, {"factor": 2}, "llff"),
    ):
        settings = resolve_train_settings(None, {"data": scene, "out_dir": tmp_path, "device": "cpu", **options})
        assert training.check_scene(settings) == kind


def test_a_multiscale_capture_is_never_spherified_by_its_poses_bounds(tmp_path):
    """`convert --multiscale` on photos writes metadata.json next to poses_bounds.npy and a
    transforms.json recording "360": the run reads the multiscale metadata (poses already
    centred), so the LLFF options must not ask for spherify (that was refused as an LLFF flag)."""
    import json

    import numpy as np

    from mipnerf_cli.data.scene import llff_options, scene_kind

    (tmp_path / "metadata.json").write_text("{}")
    np.save(tmp_path / "poses_bounds.npy", np.ones((3, 17)))
    (tmp_path / "transforms.json").write_text(json.dumps({"scene_kind": "360", "frames": []}))
    assert scene_kind(tmp_path) == "multiscale"
    assert llff_options({"data": str(tmp_path), "spherify": None})["spherify"] is False
    (tmp_path / "metadata.json").unlink()
    assert scene_kind(tmp_path) == "llff"
    assert llff_options({"data": str(tmp_path), "spherify": None})["spherify"] is True


def test_training_decides_the_scene_once_and_records_its_spherify(tmp_path, monkeypatch):
    """train works out the scene's kind (and a capture's spherify) once and hands it to the
    training and validation loads; the run records the spherify it trained with."""
    import yaml

    from mipnerf_cli.data import scene as scene_module
    from mipnerf_cli.data.formats import capture

    asked = {"kind": 0, "spherify": 0}
    kind_of, spherify_of = scene_module.scene_kind, capture.resolve_spherify

    def count_kind(path):
        asked["kind"] += 1
        return kind_of(path)

    def count_spherify(path, spherify):
        asked["spherify"] += spherify is None  # a decision, not a given value passed through
        return spherify_of(path, spherify)

    monkeypatch.setattr(scene_module, "scene_kind", count_kind)
    monkeypatch.setattr(capture, "resolve_spherify", count_spherify)
    settings = resolve_train_settings(
        None,
        {
            "data": LLFF, "out_dir": tmp_path, "exp_name": "once", "device": "cpu", "factor": 2, "batch_size": 32,
            "max_steps": 1, "check_interval": 1, "val_views": 1, "tensorboard": False, "cpu_threads": 1,
            "model": {"num_samples": 4, "netdepth": 1, "netwidth": 8, "netwidth_condition": 4, "max_deg_point": 2,
                      "deg_view": 1},
        },
    )  # fmt: skip
    assert settings.spherify is None and asked == {"kind": 0, "spherify": 0}  # settings read no scene
    result = training.train(settings, report=lambda line: None, show_progress=False)
    assert result.step == 1 and asked == {"kind": 1, "spherify": 1}
    recorded = yaml.safe_load((tmp_path / "once" / "config.yaml").read_text())
    assert recorded["spherify"] is False  # the golden LLFF scene is forward-facing
