"""Chunked rendering, the spheric camera path, picture/video writing and `mipnerf render`."""

import json
import math
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from golden import GOLDEN, load_golden
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse)

from mipnerf_cli.core.camera_paths import look_at_origin, mean_camera_distance, spheric_poses
from mipnerf_cli.core.models.base import RadianceField
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.core.rays import pinhole_rays as camera_rays
from mipnerf_cli.core.render import render_image, render_rays
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.images import colorize_acc, colorize_depth, depth_range, to_uint8, write_png, write_video


class _Level(NamedTuple):
    rgb: torch.Tensor
    distance: torch.Tensor
    acc: torch.Tensor


class _RecordingModel(RadianceField):
    """A stand-in model family: a pure function of each ray, with two levels."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(2.0))
        self.calls = []

    def forward(self, rays, randomized, white_bkgd, generator=None, noise=None, last_level_only=False):
        self.calls.append((len(rays), randomized, white_bkgd, self.training, torch.is_grad_enabled()))
        fine = _Level(torch.sigmoid(rays.origins * self.weight), rays.directions.sum(-1), rays.viewdirs[:, 0])
        coarse = _Level(fine.rgb * 0, fine.distance * 0, fine.acc * 0)
        return [coarse, fine]


def _random_rays(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    fields = {name: torch.randn(count, 3, generator=generator) for name in ("origins", "directions", "viewdirs")}
    ones = torch.ones(count, 1)
    return RayBundle(**fields, radii=ones * 0.01, near=ones * 2, far=ones * 6, lossmult=ones)


def test_render_rays_is_chunk_independent_and_uses_the_fine_level():
    model = _RecordingModel().train()
    rays = _random_rays(103)
    whole = render_rays(model, rays, chunk=1000, white_bkgd=True)
    chunked = render_rays(model, rays, chunk=10, white_bkgd=True)
    for key in ("rgb", "distance", "acc"):
        torch.testing.assert_close(whole[key], chunked[key], rtol=0, atol=1e-6)
    assert whole["rgb"].shape == (103, 3) and whole["distance"].shape == (103,) and whole["acc"].shape == (103,)
    assert torch.allclose(whole["rgb"], torch.sigmoid(rays.origins * 2))
    assert torch.allclose(whole["distance"], rays.directions.sum(-1))
    # 1 + 11 forward passes: chunks of 10 with a last one of 3, deterministic, eval mode, no grad.
    assert [c[0] for c in model.calls[1:]] == [10] * 10 + [3]
    assert all(c[1:] == (False, True, False, False) for c in model.calls)
    assert model.training  # restored afterwards


def test_render_image_reshapes_and_checks_the_ray_count():
    model = _RecordingModel()
    out = render_image(model, _random_rays(12), height=3, width=4, chunk=5, white_bkgd=False)
    assert out["rgb"].shape == (3, 4, 3) and out["distance"].shape == (3, 4) and out["acc"].shape == (3, 4)
    with pytest.raises(ValueError, match="3x5"):
        render_image(model, _random_rays(12), height=3, width=5, chunk=5, white_bkgd=False)
    with pytest.raises(ValueError, match="chunk"):
        render_rays(model, _random_rays(4), chunk=0, white_bkgd=False)


def test_camera_rays_match_the_reference_blender_loader():
    golden = load_golden("rays")
    meta = json.loads((GOLDEN / "convert/input/tiny/transforms_train.json").read_text())
    focal = 0.5 * 64 / math.tan(0.5 * meta["camera_angle_x"])
    for i, frame in enumerate(meta["frames"]):
        cam2world = torch.tensor(frame["transform_matrix"], dtype=torch.float64)[:3]
        rays = camera_rays(cam2world, width=64, height=64, focal=focal, near=2.0, far=6.0)
        for name in ("origins", "directions", "viewdirs", "radii"):
            expected = golden[f"blender_{name}"][i].reshape(64 * 64, -1)
            np.testing.assert_allclose(getattr(rays, name).numpy(), expected, atol=3e-7, err_msg=name)
        assert torch.all(rays.near == 2) and torch.all(rays.far == 6) and torch.all(rays.lossmult == 1)


def test_camera_rays_of_a_non_square_image():
    rays = camera_rays(torch.eye(4, dtype=torch.float64)[:3], width=6, height=4, focal=3.0, near=1.0, far=2.0)
    assert len(rays) == 24
    # Pixel (row 0, col 0) centre is at (0.5, 0.5): direction ((0.5 - 3)/3, -(0.5 - 2)/3, -1).
    assert torch.allclose(rays.directions[0], torch.tensor([-2.5 / 3, 1.5 / 3, -1.0]))
    assert torch.allclose(rays.radii, torch.full((24, 1), (1 / 3) * 2 / math.sqrt(12)), atol=1e-6)


def _reference_spheric_pose(theta, phi, radius):
    """mipnerf_pl's construction, written out as rotations: R_y(theta) R_x(phi) T_z(radius), then axis swap."""
    translate = np.eye(4)
    translate[2, 3] = radius
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]]
    turn = np.eye(4)
    turn[0, 0], turn[0, 2], turn[2, 0], turn[2, 2] = np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)
    swap = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
    return (swap @ turn @ tilt @ translate)[:3]


def test_spheric_poses_follow_the_mipnerf_pl_path():
    poses = spheric_poses(8, radius=4.0)
    assert poses.shape == (8, 3, 4) and poses.dtype == torch.float64
    for k, theta in enumerate(np.linspace(0, 2 * np.pi, 9)[:-1]):
        np.testing.assert_allclose(poses[k].numpy(), _reference_spheric_pose(theta, -np.pi / 5, 4.0), atol=1e-12)


@pytest.mark.parametrize("elevation", [0.0, 20.0, 60.0])
def test_spheric_poses_look_at_the_origin(elevation):
    poses = spheric_poses(5, radius=2.5, elevation_deg=elevation)
    positions = poses[:, :, 3]
    assert torch.allclose(positions.norm(dim=-1), torch.full((5,), 2.5, dtype=torch.float64))
    assert torch.allclose(
        positions[:, 2], torch.full((5,), 2.5 * math.sin(math.radians(elevation)), dtype=torch.float64)
    )
    for pose in poses:
        rotation = pose[:, :3]
        assert torch.allclose(rotation.T @ rotation, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert float(torch.det(rotation)) == pytest.approx(1.0)
        # The optical axis (-z) points at the origin; the camera's x axis stays horizontal (no roll).
        assert torch.allclose(-rotation[:, 2], -pose[:, 3] / pose[:, 3].norm())
        assert abs(float(rotation[2, 0])) < 1e-12


def test_look_at_from_straight_above_is_still_a_rotation():
    pose = look_at_origin(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))
    assert torch.allclose(pose[:, :3].T @ pose[:, :3], torch.eye(3, dtype=torch.float64))
    assert torch.allclose(pose[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_mean_camera_distance():
    cams = torch.zeros(2, 3, 4, dtype=torch.float64)
    cams[0, :, 3] = torch.tensor([3.0, 4.0, 0.0])
    cams[1, :, 3] = torch.tensor([0.0, 0.0, 2.0])
    assert mean_camera_distance(cams) == pytest.approx(3.5)


def test_colour_maps():
    depth = torch.linspace(2, 6, 12).view(3, 4)
    acc = torch.ones(3, 4)
    acc[0, 0] = 0.0
    image = colorize_depth(depth, acc, 2.0, 6.0)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [255, 255, 255]  # transparent -> white background
    near, far = image[0, 1].astype(int), image[2, 3].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # near is red, far is blue (turbo)
    assert colorize_acc(acc)[0, 0].tolist() == [0, 0, 0] and colorize_acc(acc)[1, 1].tolist() == [255, 255, 255]
    assert depth_range(depth, acc, fallback=(2.0, 6.0))[0] > 2.0
    assert depth_range(depth, torch.zeros(3, 4), fallback=(2.0, 6.0)) == (2.0, 6.0)
    assert to_uint8(torch.tensor([[-1.0, 0.5, 2.0, float("nan")]])).tolist() == [[0, 128, 255, 0]]


def test_write_png_and_videos_read_back(tmp_path):
    frames = [np.full((10, 14, 3), 40 * i, np.uint8) for i in range(4)]
    write_png(tmp_path / "a.png", frames[2])
    assert iio.imread(tmp_path / "a.png").tolist() == frames[2].tolist()
    write_video(tmp_path / "v.mp4", frames, fps=12)
    video = iio.imread(tmp_path / "v.mp4")
    assert video.shape == (4, 10, 14, 3)
    assert abs(int(video[3].mean()) - 120) <= 3
    write_video(tmp_path / "v.gif", frames, fps=10)
    assert iio.imread(tmp_path / "v.gif").shape == (4, 10, 14, 3)
    # Odd sizes are padded to even ones for yuv420p.
    write_video(tmp_path / "odd.mp4", [np.zeros((9, 11, 3), np.uint8)] * 2, fps=5)
    assert iio.imread(tmp_path / "odd.mp4").shape == (2, 10, 12, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "odd.mp4", "v.gif", "v.mp4"]


def test_failed_video_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((8, 8, 3), np.uint8)
        raise OSError("disk full")

    with pytest.raises(MipNerfError, match="could not write .*v.mp4: disk full"):
        write_video(tmp_path / "v.mp4", frames(), fps=5)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MipNerfError, match="unknown video format"):
        write_video(tmp_path / "v.avi", [], fps=5)


# ----------------------------------------------------------------------------- `mipnerf render`


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tiny_runs import make_run

    return make_run(tmp_path_factory.mktemp("runs"), multiscale=False)


def _render(run_dir, **values):
    from mipnerf_cli.rendering.video import render_path
    from mipnerf_cli.settings import RenderSettings

    return render_path(RenderSettings(run=run_dir, device="cpu", progress=False, **values))


def test_render_writes_three_videos_of_the_right_size(run_dir, tmp_path):
    result = _render(run_dir, frames=3, resolution="24x16", out=tmp_path / "spheric")
    assert sorted(p.name for p in result.folder.iterdir()) == ["acc.mp4", "cameras.json", "depth.mp4", "rgb.mp4"]
    for name in ("rgb", "depth", "acc"):
        assert iio.imread(result.folder / f"{name}.mp4").shape == (3, 16, 24, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spheric"]  # no staging folder left
    # The training cameras of the tiny scene: radius = their mean distance, focal follows the width.
    meta = json.loads((GOLDEN / "convert/input/tiny/transforms_train.json").read_text())
    distances = [np.linalg.norm(np.array(f["transform_matrix"])[:3, 3]) for f in meta["frames"]]
    assert result.radius == pytest.approx(float(np.mean(distances)))
    assert result.focal == pytest.approx(0.5 * 64 / math.tan(0.5 * meta["camera_angle_x"]) * 24 / 64)
    assert result.rays_per_second > 0


def test_render_default_location_scale_and_frames(run_dir):
    result = _render(run_dir, frames=2, scale=4, radius=3.0, format="gif", keep_frames=True)
    assert result.folder == run_dir / "render" / "spheric"
    assert (result.width, result.height, result.radius) == (16, 16, 3.0)
    assert iio.imread(result.folder / "rgb.gif").shape == (2, 16, 16, 3)
    frames = sorted(p.name for p in (result.folder / "frames").iterdir())
    assert frames == [f"{m}_{i:04d}.png" for m in ("acc", "depth", "rgb") for i in range(2)]


def test_a_path_file_is_read_once(run_dir, tmp_path, monkeypatch):
    from mipnerf_cli.rendering import paths, trajectory, video

    first = _render(run_dir, frames=2, resolution="8x8", format="png", out=tmp_path / "first")
    reads, read = [], trajectory.read_path_file

    def counted(path):
        reads.append(path)
        return read(path)

    for module in (video, paths, trajectory):
        monkeypatch.setattr(module, "read_path_file", counted)
    again = _render(run_dir, path=str(first.folder / "cameras.json"), format="png", out=tmp_path / "again")
    assert reads == [first.folder / "cameras.json"] and (again.width, again.height) == (8, 8)


def test_a_run_trained_at_a_downscale_renders_at_that_resolution(tmp_path):
    from tiny_runs import make_run

    half = make_run(tmp_path, multiscale=False, exp_name="half", downscale=2)
    meta = json.loads((GOLDEN / "convert/input/tiny/transforms_train.json").read_text())
    result = _render(half, frames=1, format="png")
    assert (result.width, result.height) == (32, 32)  # the tiny scene is 64 px, trained at 1/2
    assert result.focal == pytest.approx(0.5 * 32 / math.tan(0.5 * meta["camera_angle_x"]), rel=1e-5)


def test_render_png_frames_only(run_dir, tmp_path):
    result = _render(run_dir, frames=2, resolution="8x6", format="png", out=tmp_path / "p")
    assert sorted(p.name for p in result.folder.iterdir()) == ["cameras.json", "frames"]
    assert iio.imread(result.folder / "frames" / "depth_0001.png").shape == (6, 8, 3)


def test_failing_ffmpeg_keeps_the_frames(run_dir, tmp_path, monkeypatch):
    import mipnerf_cli.io.images as images_module

    def broken_writer(*args, **kwargs):
        raise RuntimeError("ffmpeg exited with status 1")

    monkeypatch.setattr(images_module.imageio_v2, "get_writer", broken_writer)
    with pytest.raises(MipNerfError, match=r"could not write .*rgb\.mp4: ffmpeg exited .*frames are kept in .*frames"):
        _render(run_dir, frames=2, resolution="8x8", out=tmp_path / "v")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["cameras.json", "frames"]
    assert len(list((tmp_path / "v" / "frames").iterdir())) == 6


def test_render_bad_input(run_dir, tmp_path, mipnerf):
    from tiny_runs import assert_one_line_error

    # (a missing or damaged checkpoint: tests/robustness/test_bad_input.py)
    result = mipnerf("render", "--run", str(run_dir), "--resolution", "wide")
    assert result.returncode == 1 and "• resolution:" in result.stderr and "Traceback" not in result.stderr
    result = mipnerf("render", "--run", str(run_dir), "--frames", "0")
    assert result.returncode == 1 and "• frames:" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = mipnerf(
        "render",
        "--run",
        str(run_dir),
        "--frames",
        "1",
        "--resolution",
        "4x4",
        "--device",
        "cpu",
        "--out",
        str(blocker / "x"),
    )
    assert_one_line_error(result, "cannot write to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_render_through_the_cli(run_dir, tmp_path, mipnerf):

    result = mipnerf(
        "render",
        "--run",
        str(run_dir),
        "--frames",
        "2",
        "--resolution",
        "8x8",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(tmp_path / "s"),
        "--fps",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert "2 frames of 8×8" in result.stdout and "rgb.mp4" in result.stdout
    assert iio.imread(tmp_path / "s" / "rgb.mp4").shape == (2, 8, 8, 3)


def test_render_never_replaces_a_foreign_folder(run_dir, tmp_path):
    (tmp_path / "holiday.mp4").write_text("not ours")
    with pytest.raises(MipNerfError, match="already holds other files"):
        _render(run_dir, frames=1, resolution="4x4", out=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["holiday.mp4"]
    # Our own earlier output is replaced.
    first = _render(run_dir, frames=1, resolution="4x4", out=tmp_path / "r", format="gif")
    _render(run_dir, frames=2, resolution="4x4", out=first.folder)
    assert sorted(p.name for p in first.folder.iterdir()) == ["acc.mp4", "cameras.json", "depth.mp4", "rgb.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.mp4", "r"]
