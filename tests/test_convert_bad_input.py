"""Bad input to `mipnerf convert` (issue 10, cases 1-9, and more), each through the real CLI:
exit code 1, one line on stderr naming the file or field, no traceback, OUT_DIR untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mipnerf_cli", *map(str, args)], capture_output=True, text=True)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones included) with its bytes (None for folders)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def scenes(tmp_path, golden_dir) -> Path:
    """A writable copy of the golden Blender input: ``scenes/tiny``."""
    shutil.copytree(golden_dir / "convert" / "input", tmp_path / "scenes")
    return tmp_path / "scenes"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An existing OUT_DIR that already holds something of the user's."""
    out = tmp_path / "out"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "notes.txt").write_text("keep me")
    return out


def edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def convert_refused(source: Path, out: Path, *fragments: str, extra=()) -> None:
    """Run convert, expect refusal, and check that OUT_DIR and the folder around it are unchanged."""
    before, around = snapshot(out), sorted(os.listdir(out.parent)) if out.parent.exists() else None
    result = run_cli("convert", source, out, *extra)
    assert_refused(result, *fragments)
    assert snapshot(out) == before
    if around is not None:
        assert sorted(os.listdir(out.parent)) == around  # no staging folder left next to OUT_DIR


# 1. BLENDER_DIR missing
def test_missing_blender_dir(tmp_path, out_dir):
    convert_refused(tmp_path / "no_such_dir", out_dir, "no_such_dir: folder not found")


# 2. no transforms_*.json
def test_folder_without_scene(tmp_path, out_dir):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    convert_refused(tmp_path / "empty", out_dir, "empty: no Blender scene found", "transforms_train.json")


# 3. JSON not parseable
def test_unparseable_json(scenes, out_dir):
    (scenes / "tiny" / "transforms_val.json").write_text('{"camera_angle_x": 0.69, "frames": [')
    convert_refused(scenes, out_dir, "transforms_val.json: not valid JSON", "line 1")


# 4. JSON without frames / camera_angle_x, and frames without their fields
@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda m: m.pop("frames"), ["transforms_train.json", "missing 'frames'"]),
        (lambda m: m.pop("camera_angle_x"), ["transforms_train.json", "missing 'camera_angle_x'"]),
        (lambda m: m["frames"][1].pop("file_path"), ["transforms_train.json: frames[1] has no 'file_path'"]),
        (lambda m: m["frames"][2].pop("transform_matrix"), ["frames[2] has no 'transform_matrix'"]),
        (lambda m: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]), ["frames[0].transform_matrix must be"]),
        (lambda m: m.update(camera_angle_x="wide"), ["'camera_angle_x' must be a number"]),
        (lambda m: m.update(frames=[]), ["'frames' must be a non-empty list"]),
    ],
    ids=["no-frames", "no-camera_angle_x", "no-file_path", "no-transform_matrix", "bad-matrix", "bad-angle", "empty-frames"],
)
def test_json_missing_fields(scenes, out_dir, change, fragments):
    edit_json(scenes / "tiny" / "transforms_train.json", change)
    convert_refused(scenes, out_dir, *fragments)


# 5. frame PNG missing
def test_missing_png(scenes, out_dir):
    (scenes / "tiny" / "val" / "r_2.png").unlink()
    convert_refused(scenes, out_dir, "val/r_2.png: image file not found")


# 6. PNG corrupt: truncated, not a PNG at all, damaged compressed data
def test_truncated_png(scenes, out_dir):
    # The last split's PNG, so that other images are already staged when it fails.
    path = scenes / "tiny" / "test" / "r_3.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    convert_refused(scenes, out_dir, "test/r_3.png: cannot decode the image", "truncated or corrupt")


def test_not_a_png(scenes, out_dir):
    (scenes / "tiny" / "train" / "r_1.png").write_bytes(b"this is not an image at all" * 10)
    convert_refused(scenes, out_dir, "train/r_1.png: not a PNG file")


def test_damaged_png_data(scenes, out_dir):
    path = scenes / "tiny" / "train" / "r_0.png"
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 64] = bytes(64)  # zero out the start of the compressed stream
    path.write_bytes(bytes(data))
    convert_refused(scenes, out_dir, "train/r_0.png: cannot decode the image")


# 7. RGB PNG where RGBA is expected: accepted, alpha 255 (documented decision)
def test_rgb_png_is_accepted_as_opaque(scenes, tmp_path):
    path = scenes / "tiny" / "train" / "r_1.png"
    with Image.open(path) as image:
        rgb = np.asarray(image)[..., :3].copy()
    Image.fromarray(rgb, "RGB").save(path)
    result = run_cli("convert", scenes, tmp_path / "ms")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "ms" / "tiny" / "images_train" / "001_d0.png") as image:
        assert image.mode == "RGBA"
        written = np.asarray(image)
    np.testing.assert_array_equal(written[..., :3], rgb)
    assert (written[..., 3] == 255).all()
    with Image.open(tmp_path / "ms" / "tiny" / "images_train" / "001_d3.png") as image:
        assert (np.asarray(image)[..., 3] == 255).all()


# 8. images of different sizes in one split
def test_images_of_different_sizes(scenes, out_dir):
    Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(scenes / "tiny" / "train" / "r_3.png")
    convert_refused(scenes, out_dir, "train/r_3.png: image is 32x32 (HxW) but r_0.png is 64x64")


# 9. OUT_DIR not writable
def test_out_dir_not_writable(scenes, tmp_path):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            convert_refused(scenes, locked / "out", "cannot write there", "choose an OUT_DIR you can write to")
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o700)
    else:
        # root writes through file modes; sysfs refuses new folders even to root.
        probe = Path("/sys/mipnerf-write-probe")
        try:
            probe.mkdir()
            probe.rmdir()
            pytest.skip("running as root and /sys is writable: no read-only place to test")
        except OSError:
            pass
        result = run_cli("convert", scenes, "/sys/mipnerf-out")
        assert_refused(result, "/sys/mipnerf-out: cannot write there")
        assert not Path("/sys/mipnerf-out").exists()


def test_out_dir_nested_in_missing_folders_is_not_created_on_failure(scenes, tmp_path):
    (scenes / "tiny" / "val" / "r_0.png").unlink()
    result = run_cli("convert", scenes, tmp_path / "a" / "b" / "out")
    assert_refused(result, "val/r_0.png")
    assert not (tmp_path / "a").exists()


# Image size not divisible by 2^(n_down - 1)
def test_size_not_divisible(scenes, out_dir, tmp_path):
    for split in ("train", "val", "test"):
        for i in range(4):
            Image.fromarray(np.full((60, 60, 4), 200, np.uint8)).save(scenes / "tiny" / split / f"r_{i}.png")
    convert_refused(scenes, out_dir, "r_0.png: image size 60x60 (HxW) is not divisible by 8", "--n-down")
    # 60 is divisible by 4, so three scales work.
    result = run_cli("convert", scenes, tmp_path / "three", "--n-down", 3)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "three" / "tiny" / "metadata.json").read_text())["train"]["width"][:3] == [60, 30, 15]


# OUT_DIR already holding the scene
def test_out_dir_already_holds_the_scene(scenes, out_dir):
    assert run_cli("convert", scenes, out_dir).returncode == 0
    convert_refused(scenes, out_dir, f"{out_dir / 'tiny'} already exists", "--overwrite")


def test_overwrite_refuses_a_folder_that_is_not_a_converted_scene(scenes, out_dir):
    (out_dir / "tiny").mkdir()
    (out_dir / "tiny" / "thesis.tex").write_text("precious")
    convert_refused(scenes, out_dir, "holds no metadata.json; refusing to replace it", extra=["--overwrite"])


def test_out_dir_is_a_file(scenes, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    convert_refused(scenes, target, "file.txt: exists and is not a folder")
    assert target.read_text() == "x"


def test_sixteen_bit_png(scenes, out_dir):
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(scenes / "tiny" / "val" / "r_1.png")
    convert_refused(scenes, out_dir, "val/r_1.png: 16-bit PNGs are not supported")


def test_bad_n_down(scenes, out_dir):
    convert_refused(scenes, out_dir, "--n-down must be a positive integer", extra=["--n-down", "0"])
