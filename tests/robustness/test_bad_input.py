"""The bad-input matrix of issue 10, every case through the real command line.

Each refused case must: exit with code 1; print exactly one line on stderr, ``error: ...``,
naming the file or field and saying what to do; print no traceback; and leave the disk as
it was (the snapshot of the case's folder, the shared scenes and the shared runs, taken
before and after, is identical: no new, removed or rewritten file, no staging left over).

Cases 1-9 convert, 10-14 train, 15-18 eval and render (each for both commands).
The fixtures (a 16-pixel demo scene, its multiscale conversion and two tiny trained runs)
are built once per session, through the CLI too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from PIL import Image
from tiny import tiny_settings

TINY_CONFIG = yaml.safe_dump(
    tiny_settings(batch_size=32, max_steps=2, check_interval=2, log_interval=1, lr_delay_steps=0, val_views=0)
)


@pytest.fixture(scope="session")
def shared(tmp_path_factory, mipnerf):
    """A demo scene (Blender, 16x16, 4/1/2 views), its multiscale conversion, a tiny config
    and two trained runs (2 steps): ``runs/blender`` and ``runs/multiscale``."""
    root = tmp_path_factory.mktemp("shared")
    result = mipnerf("demo-scene", root / "scenes" / "demo", "--size", 16, "--train", 4, "--val", 1, "--test", 2)
    assert result.returncode == 0, result.stderr
    result = mipnerf("convert", root / "scenes" / "demo", root / "scenes" / "multiscale")
    assert result.returncode == 0, result.stderr
    config = root / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    paths = {
        "root": root,
        "config": config,
        "blender": root / "scenes" / "demo",
        "multiscale": root / "scenes" / "multiscale" / "demo",
        "runs": root / "runs",
    }
    for name, flags in (("blender", []), ("multiscale", ["--multiscale"])):
        result = mipnerf(
            "train",
            "--config",
            config,
            "--data",
            paths[name],
            *flags,
            "--out-dir",
            paths["runs"],
            "--exp-name",
            name,
            "--no-progress",
        )
        assert result.returncode == 0, result.stderr
        assert (paths["runs"] / name / "ckpt" / "last.pt").is_file()
    return paths


@dataclasses.dataclass
class Workspace:
    """One case's private folder ``tmp`` and the session's shared fixtures."""

    tmp: Path
    shared: dict

    def __getattr__(self, name):
        try:
            return self.shared[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def out(self) -> Path:
        """An existing output folder that already holds something of the user's."""
        out = self.tmp / "out"
        if not out.exists():
            (out / "earlier").mkdir(parents=True)
            (out / "earlier" / "notes.txt").write_text("keep me")
        return out

    def scene_copy(self) -> Path:
        """A private copy of the Blender demo scene, free to damage."""
        target = self.tmp / "src" / "demo"
        if not target.exists():
            shutil.copytree(self.blender, target)
        return target

    def run_copy(self, name: str = "blender") -> Path:
        target = self.tmp / "runs" / name
        if not target.exists():
            shutil.copytree(self.runs / name, target)
        return target

    def yaml(self, text: str) -> Path:
        """The tiny config with `text`'s keys merged in (the model: section key by key)."""
        values = yaml.safe_load(TINY_CONFIG)
        for key, value in (yaml.safe_load(text) or {}).items():
            values[key] = {**values[key], **value} if key == "model" else value
        path = self.tmp / "settings.yaml"
        path.write_text(yaml.safe_dump(values))
        return path


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.unlink()  # checkpoints may be hard links (last.pt -> step-N.pt): never edit in place
    path.write_bytes(data[: int(len(data) * keep)])


def write_rgba(path: Path, size: int) -> None:
    Image.fromarray(np.full((size, size, 4), 128, np.uint8)).save(path)


@dataclasses.dataclass
class Case:
    """A refused command: `prepare` damages the workspace and returns the arguments;
    the error line must contain every fragment."""

    id: str
    prepare: Callable[[Workspace], list]
    fragments: tuple[str, ...]


# ----------------------------------------------------------------------------- 1-9 convert


def _convert(ws: Workspace, damage=None) -> list:
    source = ws.scene_copy()
    if damage is not None:
        damage(source)
    return ["convert", source.parent, ws.out]


def _damage_png_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 16] = bytes(16)  # zero the start of the compressed stream
    path.write_bytes(bytes(data))


def _unwritable_out(ws: Workspace) -> list:
    source = ws.scene_copy()
    if os.geteuid() == 0:  # root writes through file modes, but not into sysfs
        if not Path("/sys").is_dir() or _can_mkdir(Path("/sys")):
            pytest.skip("running as root without a read-only place to write to")
        return ["convert", source.parent, "/sys/mipnerf-out"]
    locked = ws.tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return ["convert", source.parent, locked / "out"]


def _can_mkdir(folder: Path) -> bool:
    probe = folder / "mipnerf-write-probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


CONVERT_CASES = [
    Case(
        "1-convert-missing-folder",
        lambda ws: ["convert", ws.tmp / "no_such_scene", ws.out],
        ("no_such_scene: folder not found", "pass a Blender scene folder"),
    ),
    Case(
        "2-convert-no-transforms-json",
        lambda ws: ["convert", ws.tmp, ws.out],
        ("no Blender scene found", "expected transforms_train.json"),
    ),
    Case(
        "3-convert-unparseable-json",
        lambda ws: _convert(
            ws, lambda s: (s / "transforms_val.json").write_text('{"camera_angle_x": 0.6, "frames": [')
        ),
        ("transforms_val.json: not valid JSON", "line 1", "fix or re-export"),
    ),
    Case(
        "4-convert-json-without-frames",
        lambda ws: _convert(ws, lambda s: edit_json(s / "transforms_train.json", lambda m: m.pop("frames"))),
        ("transforms_train.json: missing 'frames'", "list of images"),
    ),
    Case(
        "4-convert-json-without-camera_angle_x",
        lambda ws: _convert(ws, lambda s: edit_json(s / "transforms_test.json", lambda m: m.pop("camera_angle_x"))),
        ("transforms_test.json: missing 'camera_angle_x'", "field of view"),
    ),
    *[
        Case(
            f"4-convert-json-{name}",
            lambda ws, change=change: _convert(ws, lambda s: edit_json(s / "transforms_train.json", change)),
            fragments,
        )
        for name, change, fragments in [
            (
                "frame-without-file_path",
                lambda m: m["frames"][1].pop("file_path"),
                ("transforms_train.json: frames[1] has no 'file_path'", "every frame needs"),
            ),
            (
                "frame-without-transform_matrix",
                lambda m: m["frames"][2].pop("transform_matrix"),
                ("frames[2] has no 'transform_matrix'", "every frame needs"),
            ),
            (
                "bad-matrix",
                lambda m: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]),
                ("frames[0].transform_matrix must be a 3x4 or 4x4 matrix",),
            ),
            (
                "camera_angle_x-not-a-number",
                lambda m: m.update(camera_angle_x="wide"),
                ("'camera_angle_x' must be a number of radians", "'wide'"),
            ),
            ("empty-frames", lambda m: m.update(frames=[]), ("'frames' must be a non-empty list",)),
        ]
    ],
    Case(
        "5-convert-png-missing",
        lambda ws: _convert(ws, lambda s: (s / "val" / "r_0.png").unlink()),
        ("val/r_0.png: image file not found", "frames[0] of transforms_val.json", "restore the file"),
    ),
    Case(
        "6-convert-png-truncated",
        lambda ws: _convert(ws, lambda s: truncate(s / "test" / "r_1.png")),
        ("test/r_1.png: cannot decode the image", "truncated or corrupt", "re-export"),
    ),
    Case(
        "6-convert-not-a-png",
        lambda ws: _convert(ws, lambda s: (s / "train" / "r_1.png").write_bytes(b"no image" * 10)),
        ("train/r_1.png: not a PNG file", "re-export it as an 8-bit PNG"),
    ),
    Case(
        "6-convert-png-data-damaged",
        lambda ws: _convert(ws, lambda s: _damage_png_data(s / "train" / "r_0.png")),
        ("train/r_0.png: cannot decode the image", "re-export or replace it"),
    ),
    Case(
        "8-convert-sizes-differ",
        lambda ws: _convert(ws, lambda s: write_rgba(s / "train" / "r_3.png", 8)),
        ("train/r_3.png: image is 8x8 (HxW) but r_0.png is 16x16", "must have the same size"),
    ),
    Case("9-convert-out-not-writable", _unwritable_out, ("cannot write there", "choose an OUT_DIR you can write to")),
]


# ----------------------------------------------------------------------------- 10-14 train


def _train(ws: Workspace, *args, config: str = "") -> list:
    return ["train", "--config", ws.yaml(config), "--out-dir", ws.out, "--exp-name", "run", "--no-progress", *args]


def _not_a_scene(ws: Workspace) -> list:
    folder = ws.tmp / "holiday_photos"
    folder.mkdir()
    write_rgba(folder / "beach.png", 8)
    return _train(ws, "--data", folder)


TRAIN_CASES = [
    Case(
        "10-train-yaml-unknown-key",
        lambda ws: _train(ws, "--data", ws.blender, config="lr_inti: 0.01\n"),
        ("lr_inti", "did you mean lr_init?", "fix or remove it"),
    ),
    Case(
        "10-train-yaml-unknown-model-key",
        lambda ws: _train(ws, "--data", ws.blender, config="model:\n  netwidht: 8\n"),
        ("model.netwidht", "did you mean netwidth?"),
    ),
    Case(
        "11-train-yaml-wrong-type",
        lambda ws: _train(ws, "--data", ws.blender, config='batch_size: "many"\n'),
        ("batch_size", "should be a valid integer", "'many'"),
    ),
    Case(
        "11-train-yaml-wrong-choice",
        lambda ws: _train(ws, "--data", ws.blender, config="device: tpu\n"),
        ("device", "'auto', 'cpu' or 'cuda'", "'tpu'"),
    ),
    Case(
        "12-train-data-not-a-scene",
        _not_a_scene,
        ("holiday_photos: not a scene", "expected metadata.json", "transforms_train.json"),
    ),
    Case(
        "12-train-data-missing",
        lambda ws: _train(ws, "--data", ws.tmp / "nowhere"),
        ("scene folder", "nowhere not found", "pass --data"),
    ),
    Case(
        "13-train-multiscale-without-flag",
        lambda ws: _train(ws, "--data", ws.multiscale),
        ("is a multiscale scene", "add --multiscale"),
    ),
    Case(
        "13-train-blender-with-multiscale-flag",
        lambda ws: _train(ws, "--data", ws.blender, "--multiscale"),
        ("is a single-scale Blender scene", "drop --multiscale", "mipnerf convert"),
    ),
    Case(
        "14-train-batch-size-zero",
        lambda ws: _train(ws, "--data", ws.blender, "--batch-size", 0),
        ("batch_size", "greater than 0", "(got 0)"),
    ),
    Case(
        "14-train-batch-size-negative-in-yaml",
        lambda ws: _train(ws, "--data", ws.blender, config="batch_size: -8\n"),
        ("batch_size", "greater than 0", "(got -8)"),
    ),
    Case(
        "14-train-batch-size-not-divisible-by-nproc",
        lambda ws: _train(ws, "--data", ws.blender, "--nproc", 3),
        ("batch_size 32", "divisible by --nproc 3", "use a multiple of 3"),
    ),
    Case(
        "17-train-resume-from-another-model-shape",
        lambda ws: _train(
            ws,
            "--data",
            ws.blender,
            "--resume",
            ws.runs / "blender" / "ckpt" / "last.pt",
            config="model:\n  netwidth: 24\n",
        ),
        ("cannot resume from", "last.pt", "netwidth 16 -> 24", "start a new run with another --exp-name"),
    ),
]


# ----------------------------------------------------------------------------- 15-18 eval and render


def _for_both(number: int, name: str, prepare, fragments: tuple[str, ...], render_fragments=None) -> list[Case]:
    """The same refusal for `mipnerf eval` and `mipnerf render` (prepare(ws, command) -> args)."""
    return [
        Case(f"{number}-eval-{name}", lambda ws: prepare(ws, "eval"), fragments),
        Case(f"{number}-render-{name}", lambda ws: prepare(ws, "render"), render_fragments or fragments),
    ]


def _model_command(ws: Workspace, command: str, *args, resolution: str | None = "8x8") -> list:
    extra = ["--frames", 2, *(["--resolution", resolution] if resolution else [])] if command == "render" else []
    return [command, *args, "--device", "cpu", "--cpu-threads", 1, "--no-progress", "--out", ws.out / "result", *extra]


def _truncated_last(ws: Workspace, command: str) -> list:
    run = ws.run_copy()
    truncate(run / "ckpt" / "last.pt")
    return _model_command(ws, command, "--ckpt", run / "ckpt" / "last.pt")


def _run_with_truncated_last(ws: Workspace, command: str) -> list:
    run = ws.run_copy()
    truncate(run / "ckpt" / "last.pt")
    return _model_command(ws, command, "--run", run)


def _other_shape(ws: Workspace, command: str) -> list:
    """A checkpoint whose weights are not those of the model it describes (a model_config of
    another width): written with the real format and checksum, so only the shapes differ."""
    from mipnerf_cli.runs import checkpoints

    payload = checkpoints.load_checkpoint(ws.runs / "blender" / "ckpt" / "last.pt")
    payload["model_config"]["netwidth"] = 24
    path = ws.tmp / "other-shape.pt"
    checkpoints.save_checkpoint(path, payload)
    return _model_command(ws, command, "--ckpt", path)


def _no_checkpoint_in_run(ws: Workspace, command: str) -> list:
    run = ws.tmp / "empty-run"
    (run / "ckpt").mkdir(parents=True)
    return _model_command(ws, command, "--run", run)


MODEL_CASES = [
    *_for_both(
        15,
        "checkpoint-missing",
        lambda ws, c: _model_command(ws, c, "--ckpt", ws.tmp / "nope.pt"),
        ("checkpoint", "nope.pt not found", "pass a .pt file, or --run"),
    ),
    *_for_both(
        15,
        "run-without-checkpoint",
        _no_checkpoint_in_run,
        ("no checkpoint in", "empty-run/ckpt", "train first or pass --ckpt"),
    ),
    *_for_both(
        16, "checkpoint-truncated", _truncated_last, ("last.pt", "corrupted or truncated", "use an older checkpoint")
    ),
    *_for_both(
        16,
        "run-with-truncated-last",
        _run_with_truncated_last,
        ("last.pt", "corrupted or truncated", "to use an older one pass --ckpt", "step-0000002.pt"),
    ),
    *_for_both(
        17,
        "checkpoint-of-another-model-shape",
        _other_shape,
        ("other-shape.pt", "weights do not fit", "in the file", "use a checkpoint as the trainer wrote it"),
    ),
    Case(
        "18-eval-scale-beyond-single-scale-data",
        lambda ws: _model_command(ws, "eval", "--run", ws.runs / "blender", "--scale", 2),
        ("--scale 2", "1 resolution level", "use --scale 1"),
    ),
    Case(
        "18-eval-scale-beyond-multiscale-levels",
        lambda ws: _model_command(ws, "eval", "--run", ws.runs / "multiscale", "--scale", 5),
        ("--scale 5", "4 resolution levels", "use --scale 4"),
    ),
    Case(
        "18-render-scale-below-one-pixel",
        lambda ws: _model_command(ws, "render", "--run", ws.runs / "blender", "--scale", 32, resolution=None),
        ("--scale 32", "16x16", "smaller than one pixel", "--scale 16"),
    ),
    Case(  # render's divisor is --downscale now (--scale above: its older spelling); the message names the one typed
        "18-render-downscale-below-one-pixel",
        lambda ws: _model_command(ws, "render", ws.runs / "blender", "--downscale", 32, resolution=None),
        ("error: --downscale 32:", "16x16", "smaller than one pixel", "use --downscale 16 or less"),
    ),
]

CASES = CONVERT_CASES + TRAIN_CASES + MODEL_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_with_one_line_and_nothing_written(case: Case, tmp_path, shared, mipnerf):
    ws = Workspace(tmp_path / "case", shared)
    ws.tmp.mkdir()
    args = case.prepare(ws)
    watched = (ws.tmp, shared["root"], *[Path(a) for a in args if str(a).startswith("/sys/")])
    before = snapshot(*watched)
    try:
        result = mipnerf(*args, cwd=ws.tmp)
        assert_refused(result, *case.fragments)
        assert snapshot(*watched) == before
    finally:
        for locked in ws.tmp.glob("locked"):
            locked.chmod(0o700)


def test_the_matrix_covers_every_case_of_the_issue():
    numbers = {int(case.id.split("-")[0]) for case in CASES} | {7}  # 7 is accepted: tested below
    assert numbers == set(range(1, 19))
    for number in (15, 16, 17, 18):
        assert {"eval", "render"} <= {case.id.split("-")[1] for case in CASES if case.id.startswith(f"{number}-")}


# ----------------------------------------------------------------------------- 7: RGB where RGBA is expected


def test_7_rgb_png_is_accepted_as_opaque(tmp_path, shared, mipnerf):
    """Decision (README): an image without alpha is taken as fully opaque (alpha 255)."""
    ws = Workspace(tmp_path, shared)
    source = ws.scene_copy()
    with Image.open(source / "train" / "r_1.png") as image:
        rgb = np.asarray(image.convert("RGB")).copy()
    Image.fromarray(rgb, "RGB").save(source / "train" / "r_1.png")
    result = mipnerf("convert", source.parent, tmp_path / "ms")
    assert result.returncode == 0, result.stderr
    for level, size in enumerate((16, 8, 4, 2)):
        with Image.open(tmp_path / "ms" / "demo" / "images_train" / f"001_d{level}.png") as image:
            assert image.mode == "RGBA" and image.size == (size, size)
            written = np.asarray(image)
        assert (written[..., 3] == 255).all()
        if level == 0:
            np.testing.assert_array_equal(written[..., :3], rgb)
    # The Blender loader takes it the same way: train on it directly for one step.
    result = mipnerf(
        "train",
        "--config",
        shared["config"],
        "--data",
        source,
        "--out-dir",
        tmp_path / "runs",
        "--max-steps",
        1,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
