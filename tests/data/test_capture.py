"""`mipnerf convert PHOTOS|VIDEO OUT`: camera poses by pycolmap on a procedural capture
(tests/helpers/capture_scene.py: the demo objects painted with noise, 24 photos at 160 px, poses
withheld), compared with the true cameras after a similarity alignment; the scene folder
read back by the LLFF and multiscale loaders; every bad input refused in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from capture_scene import render_photo, write_photo_capture
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from PIL import Image

pytest.importorskip("pycolmap")

from mipnerf_cli.convert.capture.alignment import pose_errors, umeyama  # noqa: E402
from mipnerf_cli.convert.capture.layout import opengl_cam2world  # noqa: E402
from mipnerf_cli.convert.capture.sources import frame_windows, sharpness  # noqa: E402
from mipnerf_cli.data.layout import detect_scene_kind  # noqa: E402
from mipnerf_cli.data.layout import layout_spread_deg as camera_spread_deg  # noqa: E402
from mipnerf_cli.errors import MipNerfError  # noqa: E402

NUM_PHOTOS, SIZE = 24, 160
# Measured on this capture (pycolmap 4.2.1, one thread): rotation median 0.18 / max 0.76 deg,
# centre median 0.24 / max 1.15 % of the camera distance, focal 1.5 % short (SIMPLE_RADIAL on
# JPEGs of a 160 px render). The tolerances leave a margin of 2.5-3x.
ROTATION_MEDIAN_DEG, ROTATION_MAX_DEG = 0.6, 2.0
CENTRE_MEDIAN_PCT, CENTRE_MAX_PCT = 0.8, 3.0
FOCAL_PCT = 4.0


def llff_rows_to_opengl(rows: np.ndarray) -> np.ndarray:
    """poses_bounds.npy rows (N, 17) -> (N, 4, 4) camera-to-world, OpenGL axes."""
    matrices = rows[:, :15].reshape(-1, 3, 5)
    down, right, back, position = (matrices[:, :, k] for k in range(4))
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, 0], out[:, :3, 1], out[:, :3, 2], out[:, :3, 3] = right, -down, back, position
    return out


@pytest.fixture(scope="session")
def capture(tmp_path_factory, mipnerf):
    """The photos, the true cameras, and the scene `mipnerf convert --multiscale` made of them."""
    root = tmp_path_factory.mktemp("capture")
    paths, cameras, focal = write_photo_capture(root / "photos", NUM_PHOTOS, SIZE)
    result = mipnerf("convert", root / "photos", root / "scene", "--threads", "1", "--multiscale")
    assert result.returncode == 0, result.stderr
    return {
        "root": root,
        "photos": root / "photos",
        "scene": root / "scene",
        "cameras": np.array(cameras),
        "focal": focal,
        "stdout": result.stdout,
    }


def read_transforms(scene: Path) -> dict:
    return json.loads((scene / "transforms.json").read_text())


def test_recovered_cameras_match_the_true_ones(capture):
    meta = read_transforms(capture["scene"])
    assert [frame["original_name"] for frame in meta["frames"]] == [f"IMG_{k:04d}.JPG" for k in range(NUM_PHOTOS)]
    assert meta["unregistered"] == [] and meta["source"] == "photos" and meta["camera_model"] == "PINHOLE"
    recovered = np.array([frame["transform_matrix"] for frame in meta["frames"]])
    errors = pose_errors(recovered, capture["cameras"])
    summary = errors.summary()
    print(summary, meta["fl_x"], capture["focal"])
    assert summary["rotation_median_deg"] < ROTATION_MEDIAN_DEG and summary["rotation_max_deg"] < ROTATION_MAX_DEG
    assert summary["centre_median_pct"] < CENTRE_MEDIAN_PCT and summary["centre_max_pct"] < CENTRE_MAX_PCT
    assert abs(meta["fl_x"] / capture["focal"] - 1) * 100 < FOCAL_PCT
    assert meta["fl_x"] == meta["fl_y"] and (meta["w"], meta["h"]) == (SIZE, SIZE)
    assert "registered 24/24 images" in capture["stdout"]


def test_scene_kind_and_bounds(capture):
    meta = read_transforms(capture["scene"])
    assert meta["scene_kind"] == "360"
    # The true depth range of the objects seen from radius 4 is about 2.4 .. 5.6 (scene units);
    # SfM's unit is arbitrary, so compare the ratio far / near of each image.
    for frame in meta["frames"]:
        assert 0 < frame["near"] < frame["far"]
        assert 1.3 < frame["far"] / frame["near"] < 4.0


def test_poses_bounds_match_transforms_and_read_back(capture):
    from mipnerf_cli.data.formats.llff import load_llff, read_capture

    scene = capture["scene"]
    meta = read_transforms(scene)
    rows = np.load(scene / "poses_bounds.npy")
    assert rows.shape == (NUM_PHOTOS, 17)
    np.testing.assert_allclose(
        llff_rows_to_opengl(rows), np.array([f["transform_matrix"] for f in meta["frames"]]), atol=1e-9
    )
    np.testing.assert_allclose(rows[:, 15:], [[f["near"], f["far"]] for f in meta["frames"]])
    np.testing.assert_allclose(rows[:, [4, 9, 14]], [[SIZE, SIZE, meta["fl_x"]]] * NUM_PHOTOS)
    names = sorted(p.name for p in (scene / "images").iterdir())
    assert (
        names == [f["file_path"].split("/")[1] for f in meta["frames"]] == [f"{k:06d}.png" for k in range(NUM_PHOTOS)]
    )
    for factor in (2, 4, 8):
        with Image.open(scene / f"images_{factor}" / names[0]) as image:
            assert image.size == (SIZE // factor, SIZE // factor)
    # The loader's world frame: LLFF axes back to OpenGL, scaled and recentred. Relative
    # rotations between cameras survive all of that unchanged.
    capture_read = read_capture(scene, 4)
    rotations = capture_read.poses[:, :3, :3].astype(np.float64)
    written = np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3, :3]
    np.testing.assert_allclose(rotations[0].T @ rotations[5], written[0].T @ written[5], atol=1e-5)
    assert capture_read.focal == pytest.approx(meta["fl_x"] / 4)
    test = load_llff(scene, "test", factor=4, spherify=True)
    assert len(test.images) == 3 and test.images[0].shape == (SIZE // 4, SIZE // 4, 4)


def test_multiscale_scene_reads_back_spherified(capture):
    from mipnerf_cli.data.formats.llff import read_capture
    from mipnerf_cli.data.formats.multiscale import load_multiscale

    scene = capture["scene"]
    spherified = read_capture(scene, 0, spherify=True)
    train = load_multiscale(scene, "train")
    test = load_multiscale(scene, "test")
    assert len(train.images) == 4 * 21 and len(test.images) == 4 * 3
    assert train.lossmult.tolist()[:4] == [1.0, 4.0, 16.0, 64.0]
    assert [img.shape[:2] for img in train.images[:4]] == [(160, 160), (80, 80), (40, 40), (20, 20)]
    # image 1 of the capture is train image 0; poses as the LLFF loader's spherified ones
    np.testing.assert_allclose(train.cam2world[0].numpy(), spherified.poses[1, :3, :4], atol=1e-6)
    np.testing.assert_allclose(test.cam2world[4].numpy(), spherified.poses[8, :3, :4], atol=1e-6)
    radii = np.linalg.norm(spherified.poses[:, :3, 3], axis=-1)
    assert np.sqrt(np.mean(radii**2)) == pytest.approx(1.0, abs=1e-5)
    assert train.near == pytest.approx(0.9 * spherified.bounds.min()) and train.far == pytest.approx(
        spherified.bounds.max()
    )
    meta = json.loads((scene / "metadata.json").read_text())
    assert meta["val"] == meta["test"]


def test_corrupt_photo_is_listed_and_skipped_and_overwrite_replaces_our_scene(capture, mipnerf, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(capture["photos"], photos)
    (photos / "IMG_0100.jpg").write_bytes((photos / "IMG_0000.JPG").read_bytes()[:300])
    out = tmp_path / "scene"
    shutil.copytree(capture["scene"], out)
    result = mipnerf("convert", photos, out, "--threads", "1", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert "IMG_0100.jpg" in result.stdout and "registered 24/25 images" in result.stdout
    meta = read_transforms(out)
    assert len(meta["frames"]) == NUM_PHOTOS and not (out / "metadata.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["photos", "scene"]


def test_video_frames_sharpest_of_each_window(capture, mipnerf, tmp_path):
    import cv2
    import imageio.v2 as imageio

    video = tmp_path / "orbit.mp4"
    with imageio.get_writer(video, fps=8, codec="libx264", quality=9, macro_block_size=16) as writer:
        for path in sorted(capture["photos"].iterdir()):
            sharp = np.asarray(Image.open(path))
            writer.append_data(cv2.GaussianBlur(sharp, (0, 0), 2.0))  # a blurred frame, then the sharp one
            writer.append_data(sharp)
    result = mipnerf("convert", video, tmp_path / "scene", "--frames", str(NUM_PHOTOS), "--threads", "1")
    assert result.returncode == 0, result.stderr
    meta = read_transforms(tmp_path / "scene")
    assert meta["source"] == "video" and meta["scene_kind"] == "360"
    names = [frame["original_name"] for frame in meta["frames"]] + meta["unregistered"]
    assert sorted(names) == [f"frame_{2 * k + 1:06d}.png" for k in range(NUM_PHOTOS)]  # never the blurred ones
    assert len(meta["frames"]) >= NUM_PHOTOS - 2
    recovered = np.array([frame["transform_matrix"] for frame in meta["frames"]])
    true = capture["cameras"][[int(f["original_name"][6:12]) // 2 for f in meta["frames"]]]
    summary = pose_errors(recovered, true).summary()
    assert (
        summary["rotation_median_deg"] < 2 * ROTATION_MEDIAN_DEG
        and summary["centre_median_pct"] < 2 * CENTRE_MEDIAN_PCT
    )


# ----------------------------------------------------------------------------- bad input: one line, nothing written


def refused(mipnerf, source: Path, out: Path, *fragments: str, extra=()) -> None:
    before = snapshot(out.parent)
    result = mipnerf("convert", source, out, "--threads", "1", *extra)
    assert_refused(result, *fragments)
    assert snapshot(out.parent) == before


def test_empty_folder(mipnerf, tmp_path):
    (tmp_path / "photos").mkdir()
    refused(mipnerf, tmp_path / "photos", tmp_path / "out", "no photos")


def test_fewer_than_three_photos(capture, mipnerf, tmp_path):
    (tmp_path / "photos").mkdir()
    for name in ("IMG_0000.JPG", "IMG_0001.JPG"):
        shutil.copy(capture["photos"] / name, tmp_path / "photos" / name)
    refused(mipnerf, tmp_path / "photos", tmp_path / "out", "2 usable image(s)", "at least 3")


def test_corrupt_photos_leave_too_few(capture, mipnerf, tmp_path):
    (tmp_path / "photos").mkdir()
    for name in ("IMG_0000.JPG", "IMG_0001.JPG"):
        shutil.copy(capture["photos"] / name, tmp_path / "photos" / name)
    (tmp_path / "photos" / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    refused(mipnerf, tmp_path / "photos", tmp_path / "out", "broken.jpeg", "at least 3")


def test_photos_that_cannot_be_matched(mipnerf, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for k in range(6):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"n{k}.png")
    refused(mipnerf, tmp_path / "photos", tmp_path / "out", "only 0 of 6 images", "more overlap")


def test_unreadable_video(mipnerf, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 10)
    refused(mipnerf, tmp_path / "clip.mp4", tmp_path / "out", "clip.mp4", "cannot read the video")


def test_out_holds_another_scene(capture, mipnerf, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused(mipnerf, capture["photos"], out, "already exists", "--overwrite")
    refused(mipnerf, capture["photos"], out, "refusing to replace it", extra=("--overwrite",))


def test_forward_facing_multiscale_is_refused(capture, mipnerf, tmp_path):
    refused(
        mipnerf,
        capture["photos"],
        tmp_path / "out",
        "--multiscale needs a 360",
        extra=("--multiscale", "--scene-kind", "forward-facing"),
    )


def test_blender_only_and_capture_only_options(capture, mipnerf, tmp_path, golden_dir):
    refused(mipnerf, capture["photos"], tmp_path / "out", "--n-down", extra=("--n-down", "3"))
    result = mipnerf("convert", golden_dir / "convert" / "input", tmp_path / "out", "--frames", "10")
    assert_refused(result, "--frames", "Blender scene")


def test_interrupt_leaves_nothing(capture, tmp_path):
    from mipnerf_cli.convert.capture.pipeline import CaptureOptions, convert_capture
    from mipnerf_cli.convert.capture.sfm import SfmOptions
    from mipnerf_cli.reporting import LineReporter

    class InterruptAtMapping(LineReporter):
        def progress(self, description, total, completed=0, **kwargs):
            if description == "mapping":
                raise KeyboardInterrupt
            return super().progress(description, total, completed, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        convert_capture(
            capture["photos"],
            tmp_path / "a" / "scene",
            CaptureOptions(sfm=SfmOptions(threads=1)),
            InterruptAtMapping(print),
        )
    assert os.listdir(tmp_path) == []


def test_missing_pycolmap_is_one_line(monkeypatch):
    import sys

    from mipnerf_cli.convert.capture.sfm import import_pycolmap

    monkeypatch.setitem(sys.modules, "pycolmap", None)
    with pytest.raises(MipNerfError, match=r'pip install -e "\.\[capture\]"'):
        import_pycolmap()


# ----------------------------------------------------------------------------- small pieces


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(10, 3))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    scale, found, translation = umeyama(points, 2.5 * points @ rotation.T + [1, 2, 3])
    assert scale == pytest.approx(2.5) and np.allclose(found, rotation) and np.allclose(translation, [1, 2, 3])


def test_opengl_cam2world_inverts_colmap_pose():
    from mipnerf_cli.demo.scenes import look_at

    cam2world = look_at(np.array([1.0, -3.0, 2.0]))
    # COLMAP: world-to-camera with y down, z forward
    flip = np.diag([1.0, -1.0, -1.0])
    rotation = (cam2world[:3, :3] @ flip).T
    cam_from_world = np.concatenate([rotation, (-rotation @ cam2world[:3, 3])[:, None]], 1)
    np.testing.assert_allclose(opengl_cam2world(cam_from_world), cam2world, atol=1e-12)


def test_scene_kind_from_camera_layout():
    from capture_scene import orbit_cameras

    from mipnerf_cli.demo.llff import ForwardFacingSpec, grid_cameras

    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (500, 3))
    orbit = np.array(orbit_cameras(24))
    assert detect_scene_kind(orbit, points) == "360" and camera_spread_deg(orbit, points) > 45
    grid = np.array(grid_cameras(ForwardFacingSpec(num_images=12)))
    backdrop = np.concatenate([points, rng.uniform(-2, 2, (500, 3)) * [1, 0, 1] + [0, 2, 0]])
    assert detect_scene_kind(grid, backdrop) == "forward-facing" and camera_spread_deg(grid, backdrop) < 10
    # half an orbit (cameras on one side, 180 degrees apart) still goes around the subject
    assert detect_scene_kind(orbit[:12], points) == "360"


def test_frame_windows():
    assert frame_windows(10, 30.0, None, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert frame_windows(90, 30.0, 2.0, None).max() == 5  # 3 s of video at 2 frames per second
    assert frame_windows(4, 30.0, None, 100).tolist() == [0, 1, 2, 3]


def test_sharpness_prefers_the_sharp_image():
    import cv2

    image = render_photo(np.array(__import__("capture_scene").orbit_cameras(4)[0]), 64, 90.0)
    assert sharpness(image) > 2 * sharpness(cv2.GaussianBlur(image, (0, 0), 2.0))
