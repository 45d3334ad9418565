"""`mipnerf render --path FILE`: nerfbaselines' trajectory files (rendering/trajectory.py).
The round trip through nerfbaselines' own writer and the method's checkpoint is in
tests/nerfbaselines; these need no nerfbaselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.trajectory import read_path_file

# An OpenCV camera at (0, 0, 4) looking at the origin (down -z): x right, y down, z forward.
OPENCV_POSE = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 4.0]


def trajectory(**changes) -> dict:
    frame = {"pose": OPENCV_POSE, "intrinsics": [20.0, 20.0, 8.0, 6.0], "appearance_weights": []}
    document = {"format": "nerfbaselines-v1", "camera_model": "pinhole", "image_size": [16, 12], "fps": 12.5}
    document["frames"] = [dict(frame, **changes.pop("frame", {})), frame]
    document.update(changes)
    return document


def write(tmp_path, document) -> object:
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(document))
    return path


def test_a_trajectory_becomes_opengl_frames(tmp_path):
    frames = read_path_file(write(tmp_path, trajectory()))
    assert (len(frames), frames.width, frames.height, frames.fps) == (2, 16, 12, 12.5)
    torch.testing.assert_close(frames.focals, torch.tensor([20.0, 20.0], dtype=torch.float64))
    # OpenGL: the same camera has y up and looks down -z, i.e. the identity rotation.
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4]], dtype=torch.float64)
    torch.testing.assert_close(frames.poses[0], expected, rtol=0, atol=0)
    # A 4x4 pose reads the same.
    frames4 = read_path_file(write(tmp_path, trajectory(frame={"pose": OPENCV_POSE + [0, 0, 0, 1]})))
    torch.testing.assert_close(frames4.poses, frames.poses, rtol=0, atol=0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"camera_model": "opencv_fisheye"}, "pinhole trajectories only"),
        ({"image_size": [16]}, "'image_size' must be"),
        ({"frames": []}, "'frames' must be a non-empty list"),
        ({"frame": {"intrinsics": [20.0, 21.0, 8.0, 6.0]}}, r"frames\[0\]: fx 20 and fy 21"),
        ({"frame": {"intrinsics": [20.0, 20.0, 7.0, 6.0]}}, r"principal point \(7, 6\)"),
        ({"frame": {"pose": [1.0] * 12}}, r"frames\[0\].pose is not a rigid transform"),
        ({"frame": {"pose": [1.0] * 11}}, r"frames\[0\].pose must be 12 or 16 numbers"),
        ({"fps": -1}, "'fps' must be a positive number"),
    ],
)
def test_what_render_cannot_take_is_refused_in_one_line(tmp_path, changes, message):
    with pytest.raises(MipNerfError, match=message) as refused:
        read_path_file(write(tmp_path, trajectory(**changes)))
    assert "\n" not in str(refused.value) and "trajectory.json" in str(refused.value)


def test_other_files_are_still_camera_paths(tmp_path):
    with pytest.raises(MipNerfError, match="not found"):
        read_path_file(tmp_path / "missing.json")
    with pytest.raises(MipNerfError, match="missing 'camera_path'"):
        read_path_file(write(tmp_path, {"format": "something-else"}))
    np.testing.assert_equal(read_path_file(write(tmp_path, trajectory())).width, 16)
