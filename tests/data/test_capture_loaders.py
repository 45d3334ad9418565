"""Captures in other tools' formats: a nerfstudio / instant-ngp transforms.json and a COLMAP model
give the same rays as the same cameras written as poses_bounds.npy; spherify follows the scene's
kind; bad inputs are one line; train -> eval -> render on a nerfstudio scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_runner import assert_refused, mipnerf, snapshot  # noqa: F401  (mipnerf: fixture)
from scipy.spatial.transform import Rotation
from tiny import tiny_settings

from mipnerf_cli.data import load_scene
from mipnerf_cli.data.formats.capture import resolve_spherify
from mipnerf_cli.data.images import area_downscale, write_png
from mipnerf_cli.data.layout import detect_scene_kind, fallback_bounds
from mipnerf_cli.demo.llff import ForwardFacingSpec, grid_cameras, make_forward_facing_scene
from mipnerf_cli.demo.scenes import DemoSceneSpec, camera_poses, look_at, palette, render_view, sphere_point
from mipnerf_cli.demo.scenes import focal_length as ring_focal
from mipnerf_cli.errors import MipNerfError

FIELDS = ("origins", "directions", "viewdirs", "radii", "near", "far")
FF_SPEC = ForwardFacingSpec(width=16, height=12, num_images=9, supersample=1)
RING_SPEC = DemoSceneSpec(height=16, width=16, num_train=10, num_val=1, num_test=1, supersample=1)


# ----------------------------------------------------------------------------- scenes


def opengl_from_llff(rows: np.ndarray) -> np.ndarray:
    """(N, 4, 4) OpenGL camera-to-world matrices of poses_bounds rows [down, right, back, position]."""
    poses = rows[:, :15].reshape(-1, 3, 5)
    c2w = np.tile(np.eye(4), (len(rows), 1, 1))
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = (
        poses[..., 1],
        -poses[..., 0],
        poses[..., 2],
        poses[..., 3],
    )
    return c2w


def write_nerfstudio(scene: Path, rows: np.ndarray, names: list[str], **top) -> dict:
    """transforms.json for cameras ``rows`` (poses_bounds rows), frames shuffled, half without extension."""
    h, w, f = rows[0, 4], rows[0, 9], rows[0, 14]
    c2w = opengl_from_llff(rows)
    frames = []
    for i in np.random.default_rng(0).permutation(len(rows)):
        path = f"images/{names[i]}"
        frames.append(
            {
                "file_path": path[:-4] if i % 2 else path,
                "transform_matrix": c2w[i].tolist(),
                "near": float(rows[i, 15]),
                "far": float(rows[i, 16]),
            }
        )
    meta = {"camera_model": "OPENCV", "fl_x": f, "fl_y": f, "cx": w / 2, "cy": h / 2, "w": int(w), "h": int(h)}
    meta.update({"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "aabb_scale": 16, "frames": frames, **top})
    meta["applied_transform"] = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]]
    (scene / "transforms.json").write_text(json.dumps(meta))
    return meta


def colmap_pose(c2w_gl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(qvec w,x,y,z, tvec) of COLMAP's world-to-camera (OpenCV axes) for an OpenGL camera-to-world."""
    rotation = (c2w_gl[:3, :3] @ np.diag([1.0, -1.0, -1.0])).T
    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return np.array([w, x, y, z]), -rotation @ c2w_gl[:3, 3]


def write_colmap_text(scene: Path, rows: np.ndarray, names: list[str], points: np.ndarray, model="PINHOLE", extra=()):
    """sparse/0 as text for cameras ``rows``; every image observes every point. Returns the
    bounds the documented rule gives (depth percentiles 0.1 / 99.9, times 0.9 / 1.1)."""
    folder = scene / "sparse" / "0"
    folder.mkdir(parents=True)
    h, w, f = (float(x) for x in rows[0, [4, 9, 14]])
    params = [f, f, w / 2, h / 2, *extra] if model != "SIMPLE_PINHOLE" else [f, w / 2, h / 2]
    (folder / "cameras.txt").write_text(f"# cameras\n1 {model} {int(w)} {int(h)} {' '.join(map(repr, params))}\n")
    lines, bounds = ["# images"], []
    for i, c2w in enumerate(opengl_from_llff(rows)):
        qvec, tvec = colmap_pose(c2w)
        lines.append(f"{i + 1} {' '.join(map(repr, [*qvec.tolist(), *tvec.tolist()]))} 1 {names[i]}")
        lines.append(" ".join(f"1.5 2.5 {k + 1}" for k in range(len(points))))
        depth = (points - c2w[:3, 3]) @ -c2w[:3, 2]
        bounds.append([np.percentile(depth, 0.1) * 0.9, np.percentile(depth, 99.9) * 1.1])
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    track = " ".join(f"{i + 1} {{k}}" for i in range(len(rows)))
    (folder / "points3D.txt").write_text(
        "".join(
            f"{k + 1} {' '.join(map(repr, p.tolist()))} 200 100 50 0.5 {track.format(k=k)}\n"
            for k, p in enumerate(points)
        )
    )
    return np.array(bounds)


@pytest.fixture(scope="module")
def ff(tmp_path_factory) -> dict[str, Path]:
    """The forward-facing demo scene as poses_bounds.npy, as transforms.json and as a COLMAP text model."""
    root = tmp_path_factory.mktemp("ff")
    llff = make_forward_facing_scene(root / "llff", FF_SPEC)
    rows = np.load(llff / "poses_bounds.npy")
    names = sorted(p.name for p in (llff / "images").iterdir())
    scenes = {"llff": llff}
    scenes["nerfstudio"] = root / "nerfstudio"
    shutil.copytree(llff, scenes["nerfstudio"], ignore=shutil.ignore_patterns("poses_bounds.npy"))
    write_nerfstudio(scenes["nerfstudio"], rows, names)
    scenes["colmap"] = root / "colmap"
    shutil.copytree(llff, scenes["colmap"], ignore=shutil.ignore_patterns("poses_bounds.npy"))
    points = np.random.default_rng(1).uniform([-1.5, -1.0, -1.0], [1.5, 2.0, 1.0], (40, 3))
    bounds = write_colmap_text(scenes["colmap"], rows, names, points)
    scenes["llff_colmap"] = root / "llff_colmap"  # poses_bounds.npy with the COLMAP model's bounds
    shutil.copytree(llff, scenes["llff_colmap"])
    np.save(scenes["llff_colmap"] / "poses_bounds.npy", np.concatenate([rows[:, :15], bounds], 1))
    return scenes


@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> dict[str, Path]:
    """A 360° ring of demo views as poses_bounds.npy (near 2, far 6) and as an instant-ngp
    transforms.json (camera_angle_x, no w/h, no bounds) with and without near / far."""
    root = tmp_path_factory.mktemp("ring")
    cameras = camera_poses(RING_SPEC)["train"]
    colours = palette(0)
    llff = root / "llff"
    for folder in ("images", "images_2"):
        (llff / folder).mkdir(parents=True)
    focal = ring_focal(RING_SPEC)
    rows = []
    for i, c2w in enumerate(cameras):
        rgba = render_view(c2w, RING_SPEC, colours)
        write_png(llff / "images" / f"r_{i:02d}.png", rgba)
        write_png(llff / "images_2" / f"r_{i:02d}.png", area_downscale(rgba, 2))
        right, up, back, position = (c2w[:3, k] for k in range(4))
        pose = np.stack([-up, right, back, position, [RING_SPEC.height, RING_SPEC.width, focal]], 1)
        rows.append(np.concatenate([pose.reshape(-1), [2.0, 6.0]]))
    np.save(llff / "poses_bounds.npy", np.array(rows))
    scenes = {"llff": llff}
    for name, bounds in (("nerfstudio", True), ("no_bounds", False)):
        scenes[name] = root / name
        shutil.copytree(llff, scenes[name], ignore=shutil.ignore_patterns("poses_bounds.npy"))
        frames = [
            {
                "file_path": f"./images/r_{i:02d}",
                "transform_matrix": c2w.tolist(),
                **({"near": 2.0, "far": 6.0} if bounds else {}),
            }
            for i, c2w in enumerate(cameras)
        ]
        angle = 2 * np.arctan(0.5 * RING_SPEC.width / focal)
        (scenes[name] / "transforms.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    return scenes


def assert_same_rays(a, b, atol=1e-5):
    assert a.names == b.names
    assert a.num_images == b.num_images and (a.near, a.far) == pytest.approx((b.near, b.far), abs=atol)
    np.testing.assert_allclose(a.cam2world.numpy(), b.cam2world.numpy(), rtol=0, atol=atol)
    for i in range(a.num_images):
        rays_a, colours_a = a.image_rays(i)
        rays_b, colours_b = b.image_rays(i)
        assert np.array_equal(colours_a.numpy(), colours_b.numpy())
        for name in FIELDS:
            np.testing.assert_allclose(
                getattr(rays_a, name).numpy(), getattr(rays_b, name).numpy(), rtol=0, atol=atol, err_msg=name
            )


# ----------------------------------------------------------------------------- same rays


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("spherify", [False, True])
@pytest.mark.parametrize("factor", [0, 2])
def test_nerfstudio_json_gives_the_llff_rays(ff, factor, spherify, split):
    options = {"factor": factor, "spherify": spherify, "llffhold": 4, "white_bkgd": False}
    assert_same_rays(load_scene(ff["nerfstudio"], split, **options), load_scene(ff["llff"], split, **options))


@pytest.mark.parametrize("spherify", [False, True])
def test_colmap_text_model_gives_the_llff_rays(ff, spherify):
    options = {"factor": 2, "spherify": spherify, "llffhold": 4, "white_bkgd": False}
    for split in ("train", "test"):
        assert_same_rays(load_scene(ff["colmap"], split, **options), load_scene(ff["llff_colmap"], split, **options))


def test_colmap_binary_model_gives_the_text_model_rays(ff, tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    scene = tmp_path / "colmap_bin"
    shutil.copytree(ff["colmap"], scene)
    text, binary = scene / "sparse" / "0", tmp_path / "binary"
    binary.mkdir()
    reconstruction = pycolmap.Reconstruction()
    reconstruction.read_text(str(text))
    reconstruction.write_binary(str(binary))
    shutil.rmtree(text)
    shutil.copytree(binary, text)
    assert (text / "images.bin").is_file() and not (text / "images.txt").exists()
    for split in ("train", "test"):
        assert_same_rays(load_scene(scene, split, white_bkgd=False), load_scene(ff["colmap"], split, white_bkgd=False))


@pytest.mark.parametrize("split", ["train", "test"])
def test_instant_ngp_ring_gives_the_llff_rays(ring, split):
    options = {"spherify": True, "white_bkgd": True}
    assert_same_rays(load_scene(ring["nerfstudio"], split, **options), load_scene(ring["llff"], split, **options))


def test_principal_point_and_focal_of_the_json_are_used(ff, tmp_path):
    def load(change):
        scene = tmp_path / str(len(list(tmp_path.iterdir())))
        shutil.copytree(ff["nerfstudio"], scene)
        _edit_json(change)(scene)
        images = load_scene(scene, "train", spherify=True, white_bkgd=False)
        return images, images.image_rays(0)[0].directions.numpy().reshape(images.heights[0], images.widths[0], 3)

    plain, a = load(lambda meta: None)
    _, shifted = load(lambda meta: meta.update(cx=meta["cx"] + 1.0))  # pixel col + 1 now sees what col saw
    np.testing.assert_allclose(shifted[:, 1:], a[:, :-1], atol=1e-6)
    taller, b = load(lambda meta: meta.update(fl_y=2 * meta["fl_y"]))  # half the vertical angles
    up, back = plain.cam2world[0, :, 1].numpy(), plain.cam2world[0, :, 2].numpy()
    np.testing.assert_allclose((b @ up) / -(b @ back), 0.5 * (a @ up) / -(a @ back), atol=1e-6)
    assert float(taller.focal[0]) == pytest.approx(float(plain.focal[0]))  # focal: fl_x


def test_per_image_focals_need_a_spherified_scene(ff, tmp_path):
    scene = tmp_path / "per_image"
    shutil.copytree(ff["nerfstudio"], scene)

    def per_frame(meta):
        for k, frame in enumerate(meta["frames"]):
            frame["fl_x"] = frame["fl_y"] = meta["fl_x"] * (1 + 0.01 * k)
        del meta["fl_x"], meta["fl_y"]

    _edit_json(per_frame)(scene)
    with pytest.raises(MipNerfError, match="different focal lengths.*--spherify"):
        load_scene(scene, "train", spherify=False)
    images = load_scene(scene, "train", spherify=True)
    meta = json.loads((scene / "transforms.json").read_text())
    by_name = {Path(frame["file_path"]).stem: frame["fl_x"] for frame in meta["frames"]}
    np.testing.assert_allclose(images.focal.numpy(), [by_name[name] for name in images.names])


def test_images_in_subfolders_keep_distinct_names(ff, tmp_path):
    scene = tmp_path / "subfolders"
    shutil.copytree(ff["nerfstudio"], scene)
    for k, image in enumerate(sorted((scene / "images").glob("*.png"))):
        (scene / "images" / f"cam{k % 2}").mkdir(exist_ok=True)
        image.rename(scene / "images" / f"cam{k % 2}" / f"{k // 2:02d}.png")

    def moved(meta):
        for frame in meta["frames"]:
            k = int(Path(frame["file_path"]).stem.split("_")[1])
            frame["file_path"] = f"images/cam{k % 2}/{k // 2:02d}.png"

    _edit_json(moved)(scene)
    images = load_scene(scene, "test", llffhold=2)
    # frames sorted by path: cam0/00..04, cam1/00..03; every 2nd is a test image
    assert images.names == ["images_cam0_00", "images_cam0_02", "images_cam0_04", "images_cam1_01", "images_cam1_03"]


def test_missing_bounds_fall_back_to_the_camera_radius(ring):
    cameras = np.array(camera_poses(RING_SPEC)["train"])
    bounds = fallback_bounds(cameras)
    radius = np.sqrt(np.mean(np.sum(cameras[:, :3, 3] ** 2, -1)))  # the ring looks at the origin
    np.testing.assert_allclose(bounds, np.tile([[0.1 * radius, 3.0 * radius]], (len(cameras), 1)), rtol=1e-6)
    images = load_scene(ring["no_bounds"], "train")
    assert images.spherified and 0 < images.near < 1.0 < images.far
    assert images.num_images == len(cameras) - 2  # llffhold 8: images 0 and 8 are test images


# ----------------------------------------------------------------------------- distorted cameras

DISTORTION = {"k1": -0.12, "k2": 0.03, "p1": 0.002, "p2": -0.0015}


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) float sampled at pixel coordinates ``u``, ``v`` (pixel centres at +0.5)."""
    import cv2

    return cv2.remap(
        image,
        (u - 0.5).astype(np.float32),
        (v - 0.5).astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


@pytest.fixture(scope="module")
def distorted(tmp_path_factory) -> dict[str, Path]:
    """A forward-facing demo scene (64x48), its pinhole images and the same views through a lens
    with DISTORTION (drawn from the pinhole images) as transforms.json and as a COLMAP OPENCV model."""
    import cv2

    root = tmp_path_factory.mktemp("distorted")
    spec = ForwardFacingSpec(width=64, height=48, num_images=3, supersample=1)
    pinhole = make_forward_facing_scene(root / "pinhole", spec)
    rows = np.load(pinhole / "poses_bounds.npy")
    names = sorted(p.name for p in (pinhole / "images").iterdir())
    f, w, h = rows[0, 14], spec.width, spec.height
    matrix = np.array([[f, 0, w / 2 - 0.5], [0, f, h / 2 - 0.5], [0, 0, 1.0]])
    coefficients = np.array([DISTORTION[k] for k in ("k1", "k2", "p1", "p2")])
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    ideal = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), matrix, coefficients).reshape(h, w, 2)
    scenes = {"pinhole": pinhole}
    for kind in ("nerfstudio", "colmap"):
        scene = scenes[kind] = root / kind
        (scene / "images").mkdir(parents=True)
        for name in names:
            rgba = cv2.imread(str(pinhole / "images" / name), cv2.IMREAD_UNCHANGED)
            lens = _bilinear(rgba, f * ideal[..., 0] + w / 2, f * ideal[..., 1] + h / 2)  # what the lens saw
            cv2.imwrite(str(scene / "images" / name), lens)
    write_nerfstudio(scenes["nerfstudio"], rows, names, **DISTORTION)
    points = np.random.default_rng(1).uniform([-1.5, -1.0, -1.0], [1.5, 2.0, 1.0], (40, 3))
    write_colmap_text(scenes["colmap"], rows, names, points, model="OPENCV", extra=coefficients.tolist())
    return scenes


def _colour_error(images, truth: Path) -> float:
    """Mean absolute difference between each loaded pixel and the true pinhole image sampled
    where that pixel's ray meets it (the poses are the capture's, so the camera frames agree)."""
    from mipnerf_cli.data.images import read_rgba

    errors = []
    for i, name in enumerate(images.names):
        true = read_rgba(truth / "images" / f"{name}.png")[..., :3].astype(np.float32) / 255
        h, w = images.heights[i], images.widths[i]
        rays, colours = images.image_rays(i)
        camera = rays.directions.numpy().astype(np.float64) @ images.cam2world[i, :, :3].numpy()
        f = float(np.load(truth / "poses_bounds.npy")[0, 14])
        u = f * camera[:, 0] / -camera[:, 2] + w / 2
        v = -f * camera[:, 1] / -camera[:, 2] + h / 2
        expected = _bilinear(true, u.reshape(h, w), v.reshape(h, w))
        inner = (slice(4, h - 4), slice(4, w - 4))  # away from the replicated border
        errors.append(np.abs(colours.numpy().reshape(h, w, 3) - expected)[inner].mean())
    return float(np.mean(errors))


@pytest.mark.parametrize("kind", ["nerfstudio", "colmap"])
def test_distorted_images_are_undistorted_to_the_pinhole_view(distorted, kind, tmp_path):
    options = {"spherify": True, "llffhold": 3, "white_bkgd": False}  # world rays: the camera frame is plain
    images = load_scene(distorted[kind], "train", **options)
    undistorted = _colour_error(images, distorted["pinhole"])
    naive = tmp_path / "naive"  # the same images taken for pinhole ones
    shutil.copytree(distorted[kind], naive)
    if kind == "nerfstudio":
        _edit_json(lambda meta: meta.update(k1=0.0, k2=0.0, p1=0.0, p2=0.0))(naive)
    else:
        cameras = naive / "sparse" / "0" / "cameras.txt"
        fields = cameras.read_text().splitlines()[1].split()
        cameras.write_text(f"1 PINHOLE {' '.join(fields[2:8])}\n")
    as_pinhole = _colour_error(load_scene(naive, "train", **options), distorted["pinhole"])
    # Measured: 0.018 undistorted (two bilinear resamplings of 64x48 texture), 0.047 taken as
    # pinhole, 0.031 with the principal point half a pixel off.
    assert undistorted < 0.022 and undistorted < 0.5 * as_pinhole, (undistorted, as_pinhole)


# ----------------------------------------------------------------------------- scene kind


def test_scene_kind_from_the_camera_layout():
    ring_cameras = np.array(camera_poses(RING_SPEC)["train"])
    grid = np.array(grid_cameras(FF_SPEC))
    assert detect_scene_kind(ring_cameras) == "360"
    assert detect_scene_kind(grid) == "forward-facing"
    subject = np.random.default_rng(0).normal(0.0, 0.3, (50, 3))
    assert detect_scene_kind(ring_cameras, subject) == "360"
    assert detect_scene_kind(grid, subject) == "forward-facing"

    # Cameras on an arc looking inwards: a quarter circle is still forward-facing, a half is 360°.
    def arc(degrees):
        return np.array([look_at(sphere_point(a, 0.3)) for a in np.radians(np.linspace(0, degrees, 9))])

    assert detect_scene_kind(arc(90)) == "forward-facing"
    assert detect_scene_kind(arc(180)) == "360"


def test_spherify_follows_the_scene(ring, ff, tmp_path):
    assert resolve_spherify(ring["nerfstudio"], None) is True  # detected: 360
    assert resolve_spherify(ff["nerfstudio"], None) is False  # detected: forward-facing
    assert resolve_spherify(ff["colmap"], None) is False
    assert resolve_spherify(ring["llff"], None) is False  # plain poses_bounds.npy: the reference's default
    assert resolve_spherify(ring["nerfstudio"], False) is False  # the user's flag wins
    converted = tmp_path / "converted"
    shutil.copytree(ring["llff"], converted)
    (converted / "transforms.json").write_text(json.dumps({"scene_kind": "360", "frames": []}))
    assert resolve_spherify(converted, None) is True
    assert load_scene(converted, "train").spherified
    (converted / "transforms.json").write_text(json.dumps({"scene_kind": "sideways"}))
    with pytest.raises(MipNerfError, match="scene_kind"):
        resolve_spherify(converted, None)


def test_runs_record_the_resolved_spherify(ring, tmp_path):
    from mipnerf_cli.data.scene import llff_options
    from mipnerf_cli.settings import resolve_train_settings
    from mipnerf_cli.training import resolve_scene

    def resolved(values):  # the settings a run records: its scene decided once (training.resolve_scene)
        return resolve_scene(resolve_train_settings(None, values))[0]

    settings = resolved({"data": ring["nerfstudio"], "out_dir": tmp_path})
    assert settings.spherify is True and llff_options(settings.model_dump())["spherify"] is True
    told = resolved({"data": ring["nerfstudio"], "out_dir": tmp_path, "spherify": False})
    assert told.spherify is False
    plain = resolved({"data": ring["llff"], "out_dir": tmp_path})
    assert plain.spherify is False
    # A run without a recorded value gets its scene's kind.
    assert llff_options({"data": str(ring["nerfstudio"]), "spherify": None})["spherify"] is True


# ----------------------------------------------------------------------------- bad input


def _edit_json(change):
    def prepare(scene: Path) -> None:
        meta = json.loads((scene / "transforms.json").read_text())
        change(meta)
        (scene / "transforms.json").write_text(json.dumps(meta))

    return prepare


def _drop_focal(meta):
    del meta["fl_x"], meta["fl_y"]


def _drop_bounds(meta):
    del meta["frames"][2]["near"]


def _truncate_bin(scene: Path) -> None:
    images = scene / "sparse" / "0" / "images.txt"
    images.unlink()
    (images.parent / "images.bin").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00\x01\x00")


def _fisheye_colmap(scene: Path) -> None:
    cameras = scene / "sparse" / "0" / "cameras.txt"
    fields = cameras.read_text().splitlines()[1].split()
    cameras.write_text(f"1 OPENCV_FISHEYE {fields[2]} {fields[3]} {' '.join(fields[4:])} 0.1 0 0 0\n")


NS_CASES = {
    "missing image": (lambda s: (s / "images" / "IMG_0003.png").unlink(), ["IMG_0003", "image file not found"]),
    "bad json": (lambda s: (s / "transforms.json").write_text("{frames: ["), ["transforms.json", "not valid JSON"]),
    "no intrinsics": (_edit_json(_drop_focal), ["no focal length", "fl_x", "camera_angle_x"]),
    "fisheye k4": (_edit_json(lambda m: m.update(k4=0.05)), ["distortion (k4=0.05)", "cannot undistort"]),
    "fisheye": (_edit_json(lambda m: m.update(camera_model="OPENCV_FISHEYE")), ["OPENCV_FISHEYE", "not a pinhole"]),
    "instant-ngp fisheye": (_edit_json(lambda m: m.update(is_fisheye=True)), ["is_fisheye", "not a pinhole"]),
    "some bounds": (_edit_json(_drop_bounds), ["1 of 9 frames have no 'near'"]),
    "missing images_4": (lambda s: shutil.rmtree(s / "images_4"), ["images_4", "--factor 4"]),
    "size mismatch": (_edit_json(lambda m: m.update(w=20)), ["16x12 pixels", "camera 20x12 pixels", "must match"]),
    "not a rotation": (
        _edit_json(lambda m: m["frames"][0]["transform_matrix"][0].__setitem__(0, 3.0)),
        ["not a rotation"],
    ),
}
COLMAP_CASES = {
    "fisheye": (_fisheye_colmap, ["camera model OPENCV_FISHEYE is not a pinhole", "image_undistorter"]),
    "missing image": (lambda s: (s / "images" / "IMG_0005.png").unlink(), ["IMG_0005.png", "image file not found"]),
    "truncated binary": (_truncate_bin, ["images.bin", "truncated"]),
    "no points3D": (lambda s: (s / "sparse" / "0" / "points3D.txt").unlink(), ["points3D.bin or points3D.txt"]),
}


@pytest.mark.parametrize(
    "kind,case", [("nerfstudio", c) for c in sorted(NS_CASES)] + [("colmap", c) for c in sorted(COLMAP_CASES)]
)
def test_bad_capture_is_refused(ff, kind, case, tmp_path, mipnerf):
    prepare, fragments = (NS_CASES if kind == "nerfstudio" else COLMAP_CASES)[case]
    scene = tmp_path / "scene"
    shutil.copytree(ff[kind], scene)
    prepare(scene)
    flags = ["--factor", "4"] if case == "missing images_4" else []
    before = snapshot(tmp_path)
    result = mipnerf(
        "train", "--data", scene, "--out-dir", tmp_path / "runs", "--max-steps", 1, "--device", "cpu", *flags
    )
    assert_refused(result, *fragments)
    assert snapshot(tmp_path) == before


def test_multiscale_and_downscale_name_the_capture_format(ff, tmp_path, mipnerf):
    result = mipnerf("train", "--data", ff["nerfstudio"], "--out-dir", tmp_path, "--downscale", 2, "--device", "cpu")
    assert_refused(result, "is a nerfstudio / instant-ngp scene (transforms.json); drop --downscale")
    result = mipnerf("train", "--data", ff["colmap"], "--out-dir", tmp_path, "--multiscale", "--device", "cpu")
    assert_refused(result, "is a COLMAP model (sparse/0); drop --multiscale")


# ----------------------------------------------------------------------------- end to end

TINY = yaml.safe_dump(
    tiny_settings(
        white_bkgd=True, batch_size=32, max_steps=2, check_interval=2, log_interval=1, lr_delay_steps=0, val_views=1
    )
)


@pytest.mark.parametrize(
    "layout,auto,other", [("ring", "spheric", "spiral"), ("ff", "spiral", "spheric")], ids=["360", "forward-facing"]
)
def test_nerfstudio_scene_train_eval_render(layout, auto, other, request, tmp_path, mipnerf):
    scene = request.getfixturevalue(layout)["no_bounds" if layout == "ring" else "nerfstudio"]
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    runs = tmp_path / "runs"
    result = mipnerf("train", "--config", config, "--data", scene, "--out-dir", runs, "--exp-name", "ns")
    assert result.returncode == 0, result.stderr
    run = runs / "ns"
    recorded = "true" if layout == "ring" else "false"
    assert f"spherify: {recorded}" in (run / "config.yaml").read_text()  # resolved from the layout and recorded
    result = mipnerf("eval", "--run", run, "--no-progress", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    results = json.loads(next((run / "eval").glob("*/results.json")).read_text())
    # llffhold 8: 2 test views of the ring's 10 and of the grid's 9
    assert results["kind"] == "llff" and results["scales"][0]["num_images"] == 2
    assert np.isfinite(results["scales"][0]["psnr"])
    result = mipnerf("render", "--run", run, "--frames", 2, "--format", "png", "--no-progress", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert len(sorted((run / "render" / auto / "frames").glob("rgb_*.png"))) == 2  # --path auto follows the kind
    result = mipnerf("render", "--run", run, "--path", other, "--frames", 1, "--device", "cpu")
    assert_refused(result, f"--path {other}", f"--path {auto}")


@pytest.mark.parametrize("error, moved", [(3.0, False), (0.5, True)])
def test_stray_points_do_not_set_the_bounds(ff, tmp_path, error, moved):
    """A point far behind the scene seen by every image sets every far bound (99.9th percentile
    of 41 depths) unless its reprojection error marks it unreliable (data/layout.py's rule)."""
    from mipnerf_cli.data.formats.colmap import read_colmap

    scene = tmp_path / "colmap"
    shutil.copytree(ff["colmap"], scene)
    before = read_colmap(scene).bounds
    model = scene / "sparse" / "0"
    lines = (model / "images.txt").read_text().splitlines()
    lines = [line + " 1.5 2.5 999" if k % 2 == 1 else line for k, line in enumerate(lines[1:])]
    (model / "images.txt").write_text("# images\n" + "\n".join(lines) + "\n")
    track = " ".join(f"{i + 1} {len(lines[1].split()) // 3 - 1}" for i in range(len(lines) // 2))
    forward = -read_colmap(scene).cam2world[0, :3, 2]
    stray_z = 4000.0 * np.sign(forward[2])  # far behind the scene, in front of every camera
    with open(model / "points3D.txt", "a") as file:
        file.write(f"999 0.0 0.0 {stray_z} 200 100 50 {error} {track}\n")
    after = read_colmap(scene).bounds
    np.testing.assert_allclose(after[:, 0], before[:, 0], rtol=0 if not moved else 1e-3)
    assert (after[:, 1] > 2 * before[:, 1]).all() if moved else np.allclose(after[:, 1], before[:, 1])
