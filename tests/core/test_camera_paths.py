"""Camera paths of `mipnerf render --path`: the path math (core.camera_paths), nerfstudio's
camera_path.json (render_paths), cameras.json round trips and the refused path files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)

from mipnerf_cli.core.camera_paths import (
    catmull_rom,
    constant_speed_parameters,
    focal_from_vertical_fov,
    interpolated_poses,
    look_at_origin,
    quaternion_from_rotation,
    rigid_transform_error,
    rotation_from_quaternion,
    slerp,
    spheric_poses,
    vertical_fov_from_focal,
)
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.frames import camera_path_document, read_camera_path
from mipnerf_cli.rendering.paths import PATH_GENERATORS


def _random_rotations(count: int, seed: int = 0) -> torch.Tensor:
    q = torch.randn(count, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return rotation_from_quaternion(q)


def _about_z(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64)


# ----------------------------------------------------------------------------- core


def test_quaternions_round_trip_with_documented_shapes():
    rotations = _random_rotations(50)
    assert rotations.shape == (50, 3, 3)
    np.testing.assert_allclose(
        (rotations.transpose(1, 2) @ rotations).numpy(), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12
    )
    # Include the awkward ones: 180 degree turns, where w = 0.
    rotations = torch.cat(
        [rotations, _about_z(180)[None], torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64))[None]]
    )
    q = quaternion_from_rotation(rotations)
    assert q.shape == (52, 4) and (q[:, 0] >= 0).all()
    np.testing.assert_allclose(rotation_from_quaternion(q).numpy(), rotations.numpy(), atol=1e-12)
    # A turn of 90 degrees about z is (cos 45, 0, 0, sin 45).
    np.testing.assert_allclose(
        quaternion_from_rotation(_about_z(90)).numpy(), [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-12
    )


def test_slerp_ends_midpoint_and_shorter_arc():
    q0, q1 = quaternion_from_rotation(torch.stack([_about_z(10), _about_z(100)]))
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    out = slerp(q0.expand(3, 4), q1.expand(3, 4), t)
    assert out.shape == (3, 4)
    for q, degrees in zip(out, (10, 55, 100)):
        np.testing.assert_allclose(rotation_from_quaternion(q).numpy(), _about_z(degrees).numpy(), atol=1e-12)
    # -q1 is the same rotation: the result is the same (the short way), not the long way round.
    np.testing.assert_allclose(
        rotation_from_quaternion(slerp(q0, -q1, torch.tensor(0.5, dtype=torch.float64))).numpy(),
        _about_z(55).numpy(),
        atol=1e-12,
    )


def test_catmull_rom_passes_through_its_points():
    points = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 2, 0], [3, 2, 1]], dtype=torch.float64)
    u = torch.arange(4, dtype=torch.float64)
    np.testing.assert_allclose(catmull_rom(points, u).numpy(), points.numpy(), atol=1e-12)
    dense = catmull_rom(points, torch.linspace(0, 3, 301, dtype=torch.float64))
    assert dense.shape == (301, 3)
    # Smooth: no jump between neighbouring samples bigger than a few times the mean step.
    steps = (dense[1:] - dense[:-1]).norm(dim=-1)
    assert float(steps.max()) < 3 * float(steps.mean())
    # Collinear points stay on their line.
    line = torch.tensor([[0.0, 0, 0], [1, 1, 1], [3, 3, 3]], dtype=torch.float64)
    out = catmull_rom(line, torch.linspace(0, 2, 41, dtype=torch.float64))
    np.testing.assert_allclose(out[:, 0].numpy(), out[:, 2].numpy(), atol=1e-12)


def test_interpolated_poses_start_end_rigid_and_constant_speed():
    keys = spheric_poses(6, radius=4.0)[[0, 1, 3, 4]]  # uneven gaps: 60, 120 and 60 degrees
    poses = interpolated_poses(keys, 61)
    assert poses.shape == (61, 3, 4) and poses.dtype == torch.float64
    np.testing.assert_allclose(poses[0].numpy(), keys[0].numpy(), atol=1e-9)
    np.testing.assert_allclose(poses[-1].numpy(), keys[-1].numpy(), atol=1e-9)
    full = torch.cat([poses, torch.tensor([[[0.0, 0, 0, 1]]], dtype=torch.float64).expand(61, 1, 4)], dim=1)
    assert float(rigid_transform_error(full).max()) < 1e-12
    steps = (poses[1:, :, 3] - poses[:-1, :, 3]).norm(dim=-1)
    assert float(steps.std() / steps.mean()) < 0.01  # equal steps although the keys' gaps are not
    # The keys all look at the origin, and so (up to the spline's sag) do the frames in between.
    forward = -poses[:, :, 2]
    to_origin = -poses[:, :, 3] / poses[:, :, 3].norm(dim=-1, keepdim=True)
    assert float((forward * to_origin).sum(-1).min()) > 0.97


def test_interpolated_poses_degenerate_inputs():
    one = look_at_origin(torch.tensor([0.0, 4.0, 1.0], dtype=torch.float64))[None]
    assert torch.equal(interpolated_poses(one, 3), one.expand(3, 3, 4))
    # Two cameras at the same place turning: positions stay, the rotation still interpolates.
    still = torch.stack(
        [
            torch.cat([_about_z(0), torch.ones(3, 1, dtype=torch.float64)], 1),
            torch.cat([_about_z(90), torch.ones(3, 1, dtype=torch.float64)], 1),
        ]
    )
    poses = interpolated_poses(still, 3)
    np.testing.assert_allclose(poses[1, :, :3].numpy(), _about_z(45).numpy(), atol=1e-9)
    assert torch.allclose(
        constant_speed_parameters(still[:, :, 3], 3), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        interpolated_poses(one, 0)


def test_rigid_transform_error_and_fov_conversions():
    pose = torch.eye(4, dtype=torch.float64)[None].repeat(3, 1, 1)
    pose[1, :3, :3] *= 1.1  # scaled
    pose[2, 3, 0] = 0.5  # not an affine bottom row
    errors = rigid_transform_error(pose)
    assert errors.shape == (3,)
    assert float(errors[0]) == 0.0 and float(errors[1]) == pytest.approx(0.331) and float(errors[2]) == 0.5
    mirrored = torch.diag(torch.tensor([1.0, 1, -1, 1], dtype=torch.float64))[None]
    assert float(rigid_transform_error(mirrored)[0]) == pytest.approx(2.0)  # det -1
    assert float(focal_from_vertical_fov(torch.tensor(90.0), 100)) == pytest.approx(50.0)
    fov = torch.tensor([10.0, 47.3, 120.0])
    np.testing.assert_allclose(
        vertical_fov_from_focal(focal_from_vertical_fov(fov, 480), 480).numpy(), fov.numpy(), rtol=1e-12
    )


# ----------------------------------------------------------------------------- camera_path.json


def _nerfstudio_path(poses, fov=50.0, width=32, height=24, **extra) -> dict:
    flat = [torch.cat([p, torch.tensor([[0.0, 0, 0, 1]], dtype=torch.float64)]).flatten().tolist() for p in poses]
    return {
        "keyframes": [],
        "camera_type": "perspective",
        "render_height": height,
        "render_width": width,
        "fps": 24,
        "seconds": len(flat) / 24,
        "smoothness_value": 0.5,
        "is_cycle": False,
        **extra,
        "camera_path": [{"camera_to_world": m, "fov": fov, "aspect": width / height} for m in flat],
    }


def test_reads_a_nerfstudio_camera_path(tmp_path):
    poses = spheric_poses(3, radius=4.0)
    path = tmp_path / "camera_path.json"
    path.write_text(json.dumps(_nerfstudio_path(poses, fov=60.0)))
    frames = read_camera_path(path)
    assert (len(frames), frames.width, frames.height, frames.fps) == (3, 32, 24, 24)
    np.testing.assert_allclose(frames.poses.numpy(), poses.numpy(), atol=1e-15)
    np.testing.assert_allclose(frames.focals.numpy(), 12 / math.tan(math.radians(30)), rtol=1e-12)
    # Without fps, the frame rate is the frames over the seconds, as nerfstudio's render does.
    document = _nerfstudio_path(poses)
    del document["fps"]
    document["seconds"] = 0.5
    path.write_text(json.dumps(document))
    assert read_camera_path(path).fps == pytest.approx(6.0)


def test_cameras_json_reads_back_exactly(tmp_path):
    poses = interpolated_poses(spheric_poses(5, radius=3.7, elevation_deg=20.0), 7)
    document = _nerfstudio_path(poses)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(document))
    frames = read_camera_path(path)
    frames.focals = frames.focals * 1.2345678901  # not a round fov: only the focal key keeps it exact
    written = tmp_path / "cameras.json"
    written.write_text(json.dumps(camera_path_document(frames, fps=12.0)))
    again = read_camera_path(written)
    assert torch.equal(again.poses, frames.poses) and torch.equal(again.focals, frames.focals)
    assert (again.width, again.height, again.fps) == (32, 24, 12.0)
    entry = json.loads(written.read_text())["camera_path"][0]
    assert sorted(entry) == ["aspect", "camera_to_world", "focal", "fov", "height", "width"]
    assert len(entry["camera_to_world"]) == 16 and entry["camera_to_world"][12:] == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda d: d.pop("camera_path"), "missing 'camera_path'"),
        (lambda d: d.pop("render_width"), "missing 'render_width'"),
        (lambda d: d["camera_path"][1].pop("fov"), "camera_path[1] has no 'fov'"),
        (lambda d: d["camera_path"][0].pop("camera_to_world"), "camera_path[0] has no 'camera_to_world'"),
        (lambda d: d["camera_path"][0].update(camera_to_world=[1, 0, 0]), "must be 16 numbers"),
        (
            lambda d: d["camera_path"][1].update(camera_to_world=[2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]),
            "camera_path[1].camera_to_world is not a rigid transform",
        ),
        (lambda d: d.update(camera_path=[]), "'camera_path' is empty"),
        (lambda d: d["camera_path"][0].update(fov=180), "between 0 and 180 degrees"),
        (lambda d: d["camera_path"][0].update(fov=0), "between 0 and 180 degrees"),
        (lambda d: d.update(render_height=0), "'render_height' must be a positive whole number"),
        (lambda d: d.update(fps=-1), "'fps' must be a positive number"),
    ],
)
def test_bad_camera_path_files(tmp_path, change, fragment):
    document = _nerfstudio_path(spheric_poses(2, radius=4.0))
    change(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MipNerfError) as error:
        read_camera_path(path)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_the_path_names():
    assert set(PATH_GENERATORS) >= {"spheric", "interpolate"}


# ----------------------------------------------------------------------------- render along paths


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tiny_runs import make_run

    return make_run(tmp_path_factory.mktemp("runs"), multiscale=False)


def _render(run_dir, **values):
    from mipnerf_cli.rendering.video import render_path
    from mipnerf_cli.settings import RenderSettings

    return render_path(RenderSettings(run=run_dir, device="cpu", progress=False, format="png", **values))


def _frames(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "frames").iterdir())}


@pytest.mark.parametrize("path", ["spheric", "interpolate"])
def test_a_render_repeats_exactly_from_its_cameras_json(run_dir, tmp_path, path):
    first = _render(run_dir, path=path, frames=3, resolution="12x8", out=tmp_path / "a")
    cameras = first.folder / "cameras.json"
    document = json.loads(cameras.read_text())
    assert len(document["camera_path"]) == 3 and (document["render_width"], document["render_height"]) == (12, 8)
    again = _render(run_dir, path=str(cameras), out=tmp_path / "b")
    assert again.num_frames == 3 and (again.width, again.height) == (12, 8)
    assert _frames(first.folder) == _frames(again.folder) and len(_frames(again.folder)) == 9
    assert (again.folder / "cameras.json").read_text() == cameras.read_text()


def test_interpolate_goes_through_the_test_cameras(run_dir, tmp_path):
    from tiny_runs import BLENDER

    from mipnerf_cli.data import load_scene

    result = _render(run_dir, path="interpolate", split="test", frames=5, resolution="4x4", out=tmp_path / "i")
    document = json.loads((result.folder / "cameras.json").read_text())
    poses = np.array([c["camera_to_world"] for c in document["camera_path"]]).reshape(5, 4, 4)
    test = load_scene(BLENDER, "test", multiscale=False, white_bkgd=True).cam2world.numpy()
    np.testing.assert_allclose(poses[0, :3], test[0], atol=1e-6)
    np.testing.assert_allclose(poses[-1, :3], test[-1], atol=1e-6)
    assert result.radius is None


def test_a_nerfstudio_path_renders_at_its_size(run_dir, tmp_path):
    path = tmp_path / "camera_path.json"
    path.write_text(json.dumps(_nerfstudio_path(spheric_poses(2, radius=4.0), fov=40.0, width=10, height=6)))
    result = _render(run_dir, path=str(path), frames=99, out=tmp_path / "n")
    assert (result.num_frames, result.width, result.height) == (2, 10, 6)
    assert result.focal == pytest.approx(3 / math.tan(math.radians(20)))
    # --scale halves it, the field of view stays.
    half = _render(run_dir, path=str(path), scale=2, out=tmp_path / "h")
    assert (half.width, half.height, half.focal) == (5, 3, pytest.approx(result.focal / 2))


# ----------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize(
    "name, change, fragments",
    [
        ("not-a-camera-path", lambda d: {"frames": d["camera_path"]}, ("not a camera path", "missing 'camera_path'")),
        ("no-fov", lambda d: d["camera_path"][0].pop("fov") and d, ("camera_path[0] has no 'fov'",)),
        (
            "not-rigid",
            lambda d: (
                d["camera_path"][1].update(camera_to_world=[1, 0, 0, 0, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]) or d
            ),
            ("camera_path[1].camera_to_world is not a rigid transform",),
        ),
        ("zero-frames", lambda d: d.update(camera_path=[]) or d, ("'camera_path' is empty", "at least one frame")),
        ("fov-too-wide", lambda d: d["camera_path"][0].update(fov=200) or d, ("fov is 200", "between 0 and 180")),
    ],
)
def test_bad_path_file_is_refused_by_the_cli(run_dir, tmp_path, mipnerf, name, change, fragments):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(change(_nerfstudio_path(spheric_poses(2, radius=4.0)))))
    before = snapshot(tmp_path, run_dir)
    result = mipnerf("render", "--run", run_dir, "--path", path, "--device", "cpu", "--no-progress")
    assert_refused(result, str(path), *fragments)
    assert snapshot(tmp_path, run_dir) == before


def test_unknown_path_name_and_zero_frames_are_refused_by_the_cli(run_dir, tmp_path, mipnerf):
    before = snapshot(tmp_path, run_dir)
    assert_refused(
        mipnerf("render", "--run", run_dir, "--path", "zigzag", "--no-progress"),
        "path",
        "auto, spheric, spiral, interpolate",
    )
    assert_refused(mipnerf("render", "--run", run_dir, "--path", "interpolate", "--frames", 0), "frames", "(got 0)")
    assert_refused(mipnerf("render", "--run", run_dir, "--path", tmp_path / "nowhere.json"), "nowhere.json not found")
    assert snapshot(tmp_path, run_dir) == before
