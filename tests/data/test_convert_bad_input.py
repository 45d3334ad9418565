"""More bad input to `mipnerf convert` than the issue-10 matrix (tests/robustness/test_bad_input.py holds
cases 1-9), each through the real CLI: exit code 1, one line on stderr naming the file or
field, no traceback, OUT_DIR untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


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


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def convert_refused(mipnerf, source: Path, out: Path, *fragments: str, extra=()) -> None:
    """Run convert, expect refusal, and check that OUT_DIR and the folder around it are unchanged."""
    before, around = snapshot(out), sorted(os.listdir(out.parent)) if out.parent.exists() else None
    result = mipnerf("convert", source, out, *extra)
    assert_refused(result, *fragments)
    assert snapshot(out) == before
    if around is not None:
        assert sorted(os.listdir(out.parent)) == around  # no staging folder left next to OUT_DIR


def test_out_dir_nested_in_missing_folders_is_not_created_on_failure(scenes, tmp_path, mipnerf):
    (scenes / "tiny" / "val" / "r_0.png").unlink()
    result = mipnerf("convert", scenes, tmp_path / "a" / "b" / "out")
    assert_refused(result, "val/r_0.png")
    assert not (tmp_path / "a").exists()


# Image size not divisible by 2^(n_down - 1)
def test_size_not_divisible(scenes, out_dir, tmp_path, mipnerf):
    for split in ("train", "val", "test"):
        for i in range(4):
            Image.fromarray(np.full((60, 60, 4), 200, np.uint8)).save(scenes / "tiny" / split / f"r_{i}.png")
    convert_refused(mipnerf, scenes, out_dir, "r_0.png: image size 60x60 (HxW) is not divisible by 8", "--n-down")
    # 60 is divisible by 4, so three scales work.
    result = mipnerf("convert", scenes, tmp_path / "three", "--n-down", 3)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "three" / "tiny" / "metadata.json").read_text())["train"]["width"][:3] == [60, 30, 15]


# OUT_DIR already holding the scene
def test_out_dir_already_holds_the_scene(scenes, out_dir, mipnerf):
    assert mipnerf("convert", scenes, out_dir).returncode == 0
    convert_refused(mipnerf, scenes, out_dir, f"{out_dir / 'tiny'} already exists", "--overwrite")


def test_overwrite_refuses_a_folder_that_is_not_a_converted_scene(scenes, out_dir, mipnerf):
    (out_dir / "tiny").mkdir()
    (out_dir / "tiny" / "thesis.tex").write_text("precious")
    convert_refused(mipnerf, scenes, out_dir, "holds no metadata.json; refusing to replace it", extra=["--overwrite"])


def test_out_dir_is_a_file(scenes, tmp_path, mipnerf):
    target = tmp_path / "file.txt"
    target.write_text("x")
    convert_refused(mipnerf, scenes, target, "file.txt: exists and is not a folder")
    assert target.read_text() == "x"


def test_sixteen_bit_png(scenes, out_dir, mipnerf):
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(scenes / "tiny" / "val" / "r_1.png")
    convert_refused(mipnerf, scenes, out_dir, "val/r_1.png: 16-bit PNGs are not supported")


def test_bad_n_down(scenes, out_dir, mipnerf):
    convert_refused(mipnerf, scenes, out_dir, "--n-down must be a positive integer", extra=["--n-down", "0"])
