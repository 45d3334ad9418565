"""`mipnerf view`'s library parts without a browser: cameras, resolution plan, cancellation, export, errors."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from golden import GOLDEN
from tiny_runs import make_run, one_cpu_thread  # noqa: F401

from mipnerf_cli.core.quaternions import rotation_from_quaternion
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.frames import write_camera_path
from mipnerf_cli.viewer import cameras, render, server, watch


def test_viser_pose_round_trip():
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    c2w = np.concatenate([rotation, [[1.0], [2.0], [3.0]]], axis=1)
    wxyz, position = cameras.viser_pose(c2w)
    back = cameras.camera_from_viser(wxyz, position, 0.8, 1.5)
    np.testing.assert_allclose(back.cam2world, c2w, atol=1e-12)
    # viser looks down +z of its camera; the dataset camera down -z: the same world direction.
    np.testing.assert_allclose(
        rotation_from_quaternion(torch.from_numpy(wxyz)).numpy()[:, 2], -rotation[:, 2], atol=1e-12
    )


def test_plan_resolutions():
    assert cameras.plan_resolutions(256, 1.0) == [(64, 64), (256, 256)]
    assert cameras.plan_resolutions(256, 2.0) == [(64, 32), (256, 128)]
    assert cameras.plan_resolutions(16, 1.0) == [(8, 8), (16, 16)]
    assert cameras.plan_resolutions(8, 1.0) == [(8, 8)]


def test_render_cancels_between_chunks(tmp_path):
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(make_run(tmp_path, multiscale=False), None, torch.device("cpu"))
    renderer = render.ProgressiveRenderer(trained.model, True, 2.0, 6.0, chunk=64)
    view = cameras.ViewCamera(np.array([[1, 0, 0, 0], [0, 0, -1, -4.0], [0, 1, 0, 0]], dtype=float), 0.7, 1.0)
    calls = []

    def cancel_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(render.Cancelled):
        renderer.render(view, 32, 32, is_cancelled=cancel_after_two)
    assert len(calls) == 3  # 1024 rays in 16 chunks: stopped at the third
    full = renderer.render(view, 32, 32)
    depth = renderer.render(view, 32, 32, output="depth")
    assert full.shape == (32, 32, 3) and full.dtype == np.uint8
    assert not np.array_equal(full, depth)
    wide = renderer.render(view, 32, 32, footprint=8.0)
    assert not np.array_equal(full, wide)


def test_camera_path_json(tmp_path):
    keys = [
        cameras.ViewCamera(np.eye(4)[:3], np.radians(50.0), 1.5),
        cameras.ViewCamera(np.concatenate([np.eye(3), [[0], [0], [4.0]]], axis=1), np.radians(40.0), 1.5),
    ]
    out = tmp_path / "camera_path.json"
    write_camera_path(out, cameras.keyframe_frames(keys, 300, 200), 30.0, 4.0)
    document = json.loads(out.read_text())
    assert (document["render_width"], document["render_height"], document["fps"], document["seconds"]) == (
        300,
        200,
        30.0,
        4.0,
    )
    assert len(document["camera_path"]) == 2
    assert document["camera_path"][1]["camera_to_world"][11] == 4.0
    assert document["camera_path"][1]["camera_to_world"][12:] == [0.0, 0.0, 0.0, 1.0]
    assert document["camera_path"][0]["fov"] == pytest.approx(50.0)
    with pytest.raises(MipNerfError, match="no keyframes"):
        cameras.keyframe_frames([], 300, 200)


def test_port_in_use_is_an_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(MipNerfError, match="in use"):
            server.check_address("127.0.0.1", taken.getsockname()[1])


def test_watcher_picks_up_a_new_checkpoint(tmp_path):
    from mipnerf_cli.runs import checkpoints

    run = make_run(tmp_path, multiscale=False)
    watcher = watch.CheckpointWatcher(run, 7, torch.device("cpu"))
    assert watcher.poll() is None
    payload = checkpoints.load_checkpoint(run / "ckpt" / "last.pt")
    payload["step"] = 9
    before = sorted(p.name for p in run.rglob("*"))
    checkpoints.save_step(run / "ckpt", payload, keep=2)
    found = watcher.poll()
    assert found is not None and found[1] == 9
    (run / "ckpt" / "step-0000010.pt").write_bytes(b"damaged")
    assert watcher.poll() is None and watcher.step == 9
    assert "lock" not in " ".join(sorted(p.name for p in run.rglob("*")) + before).lower()


LLFF_SCENE = GOLDEN / "llff" / "llff_scene"  # 17 images, 36x24


def llff_run(tmp_path, spherify: bool = False):
    """A tiny run on the forward-facing golden LLFF scene, trained (here: saved) at factor 2."""
    from mipnerf_cli.runs import checkpoints

    run = make_run(
        tmp_path, multiscale=False, exp_name="tiny-llff", data=LLFF_SCENE, factor=2, spherify=spherify, white_bkgd=False
    )
    payload = checkpoints.load_checkpoint(run / "ckpt" / "last.pt")
    payload["scene"]["kind"] = "llff"
    checkpoints.save_step(run / "ckpt", payload, keep=1)
    return run


def test_llff_views_render_in_ndc_like_mipnerf_render(tmp_path):
    from mipnerf_cli.core.render import render_image
    from mipnerf_cli.data import load_scene
    from mipnerf_cli.data.formats.llff import pose_rays
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(llff_run(tmp_path), None, torch.device("cpu"))
    views = cameras.load_training_views(trained, None)
    # The run's factor 2, not the full-size images: the poses and focal it was trained on.
    expected = load_scene(LLFF_SCENE, "train", white_bkgd=False, factor=2)
    assert (views.ndc, views.kind, views.widths[0], views.heights[0]) == (True, "llff", 18, 12)
    np.testing.assert_allclose(views.cam2world, expected.cam2world.numpy())
    np.testing.assert_allclose(views.focal, expected.focal.numpy())
    assert (views.near, views.far) == (0.0, 1.0)
    # Recentred forward-facing poses: the orbit's up is the cameras' mean up, about +y.
    assert views.up_direction()[1] > 0.9

    view = cameras.ViewCamera(views.cam2world[1], 2 * np.arctan(0.5 * 12 / views.focal[1]), 18 / 12)
    renderer = render.ProgressiveRenderer(trained.model, False, views.near, views.far, chunk=64, ndc=True)
    shown = renderer.render(view, 18, 12)
    # `mipnerf render`'s frame of the same camera: NDC rays from pose_rays, one render_image.
    rays = pose_rays(torch.from_numpy(views.cam2world[1]), 18, 12, float(views.focal[1]), 0.0, 1.0, True)
    out = render_image(trained.model, rays, 12, 18, 64, False)
    np.testing.assert_array_equal(shown, (out["rgb"].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    world = render.ProgressiveRenderer(trained.model, False, views.near, views.far, chunk=64, ndc=False)
    assert np.abs(world.render(view, 18, 12).astype(int) - shown).mean() > 1  # world rays would be wrong


def test_spherified_llff_views_use_world_rays(tmp_path):
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(llff_run(tmp_path, spherify=True), None, torch.device("cpu"))
    views = cameras.load_training_views(trained, None)
    assert (views.ndc, views.kind) == (False, "llff") and views.far > views.near > 0


def test_coarse_image_fits_the_time_budget():
    # 256x192 = 49152 pixels; 1600 rays/s and 0.25 s: 400 rays, 11.1 (so 12) times smaller per side.
    assert cameras.coarse_factor(256 * 192, 1600.0, 0.25) == 12
    assert cameras.plan_resolutions(256, 4 / 3, 12)[0] == (21, 16)
    assert cameras.coarse_factor(256 * 192, 1e6, 0.25) == 4  # a fast machine: the default 4
    assert cameras.coarse_factor(256 * 192, None, 0.25) == 4  # nothing measured yet
    # Never below 8 pixels on the shorter side, however slow.
    assert cameras.plan_resolutions(256, 4 / 3, cameras.coarse_factor(256 * 192, 1.0, 0.25))[0] == (10, 8)


def test_render_queue_sizes_the_coarse_image_from_measured_speed(tmp_path):
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(make_run(tmp_path, multiscale=False), None, torch.device("cpu"))
    renderer = render.ProgressiveRenderer(trained.model, True, 2.0, 6.0, chunk=256)
    frames = []
    queue = render.RenderQueue(renderer, frames.append, coarse_seconds=0.25)
    view = cameras.ViewCamera(np.array([[1, 0, 0, 0], [0, 0, -1, -4.0], [0, 1, 0, 0]], dtype=float), 0.7, 1.0)
    try:
        queue.submit(view, 64)
        assert queue.wait_idle(60)
        assert [(f.width, f.final) for f in frames if f.width != 64 or f.final] == [(16, False), (64, True)]
        # Finished images carry their render time (the viewer's "Frame time" line); partial ones none.
        assert [f.seconds is not None for f in frames if f.width != 64 or f.final] == [True, True]
        assert render.frame_time_text(frames[-1]).startswith("64x64: ")
        queue.rays_per_second = 100.0  # pretend a slow machine: 25 rays in 0.25 s
        frames.clear()
        queue.submit(view, 64)
        assert queue.wait_idle(60)
        assert (frames[0].width, frames[0].height) == (8, 8)  # 8 times smaller: as small as allowed
    finally:
        queue.stop()


@pytest.mark.parametrize(
    "host, port, fragments",
    [
        ("127.0.0.1", 99999, ("--port 99999", "1 to 65535")),
        ("127.0.0.1", 0, ("--port 0", "1 to 65535")),
        ("127.0.0.1", -1, ("--port -1", "1 to 65535")),
        ("no-such-host.invalid", 8080, ("--host no-such-host.invalid", "not a known host")),
        ("192.0.2.1", 8080, ("--host 192.0.2.1", "not an address of this machine")),  # TEST-NET-1: never ours
    ],
)
def test_bad_host_or_port_is_a_one_line_error(host, port, fragments):
    with pytest.raises(MipNerfError) as raised:
        server.check_address(host, port)
    assert "\n" not in str(raised.value)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_ipv6_loopback_is_accepted():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server.check_address("::1", _free_port())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (("--port", "99999"), ("--port 99999", "1 to 65535")),
        (("--port", "-5"), ("--port -5",)),
        (("--host", "no-such-host.invalid"), ("--host no-such-host.invalid",)),
        (("--host", "192.0.2.1"), ("--host 192.0.2.1",)),
    ],
)
def test_view_refuses_a_bad_address_in_one_line(tmp_path, mipnerf, flags, fragments):
    run = make_run(tmp_path, multiscale=False)
    before = snapshot(run)
    assert_refused(mipnerf("view", run, *flags, "--device", "cpu"), *fragments)
    assert snapshot(run) == before


def test_view_refuses_a_port_in_use_in_one_line(tmp_path, mipnerf):
    run = make_run(tmp_path, multiscale=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_refused(mipnerf("view", run, "--port", port, "--device", "cpu"), f"port {port}", "in use")


def test_the_viewer_shows_the_frame_time_of_finished_images(tmp_path):
    pytest.importorskip("viser", reason="viser is not installed (pip install -e '.[view]')")
    from mipnerf_cli.runs.trained import load_trained_model

    trained = load_trained_model(make_run(tmp_path, multiscale=False), None, torch.device("cpu"))
    viewer = server.Viewer(
        trained, cameras.load_training_views(trained, None), port=_free_port(), watch=False, report=lambda m: None
    )
    shown = []

    class Client:
        class scene:
            set_background_image = staticmethod(lambda image, **kwargs: shown.append(image.shape))

    try:
        assert viewer.frame_time.value == ""
        image = np.zeros((48, 64, 3), dtype=np.uint8)
        viewer._show(Client, render.Frame(image, 64, 48, final=True, seconds=0.5))
        assert viewer.frame_time.value == "64x48: 0.50 s (2.0 fps)"
        viewer._show(Client, render.Frame(image, 64, 48, final=False))  # a partial image keeps the line
        assert viewer.frame_time.value == "64x48: 0.50 s (2.0 fps)" and shown == [(48, 64, 3)] * 2
    finally:
        viewer.server.stop()
