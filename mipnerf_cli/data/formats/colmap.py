"""A COLMAP model folder read directly: ``SCENE/sparse/0`` (or ``SCENE/sparse``) holding
``cameras``, ``images`` and ``points3D`` as ``.bin`` or ``.txt``, the photos in ``SCENE/images``.

A small reader of COLMAP's documented formats (colmap.github.io/format.html), not pycolmap:
the three files are simple, the reader needs no optional dependency (pycolmap is the
``capture`` extra, for ``mipnerf convert``), and it does not follow pycolmap's API changes.

- cameras: pinhole models (SIMPLE_PINHOLE, PINHOLE) as they are; SIMPLE_RADIAL, RADIAL, OPENCV
  and FULL_OPENCV images are undistorted to pinhole ones as they are read (``data/undistort.py``);
  fisheye and FOV models are refused (``colmap image_undistorter`` writes a PINHOLE model).
- images: world-to-camera quaternion (w, x, y, z) and translation in OpenCV axes (x right,
  y down, z forward), turned into OpenGL camera-to-world matrices; sorted by image name.
- bounds per image from the depths of the reliable points it observes (``data/layout.py``'s
  one rule, which ``mipnerf convert`` uses too). An image that observes no point gets the
  smallest near and largest far of the others.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mipnerf_cli.data.formats.capture_cameras import (
    CaptureCameras,
    colmap_model_folder,
    distortion_or_none,
    recorded_scene_kind,
)
from mipnerf_cli.data.layout import depth_bounds, reliable_points
from mipnerf_cli.data.undistort import opencv_coefficients
from mipnerf_cli.errors import MipNerfError

# model id -> (name, parameter names); COLMAP's src/colmap/sensor/models.h order.
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", ("f", "cx", "cy")),
    1: ("PINHOLE", ("fx", "fy", "cx", "cy")),
    2: ("SIMPLE_RADIAL", ("f", "cx", "cy", "k")),
    3: ("RADIAL", ("f", "cx", "cy", "k1", "k2")),
    4: ("OPENCV", ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")),
    5: ("OPENCV_FISHEYE", ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")),
    6: ("FULL_OPENCV", ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
    7: ("FOV", ("fx", "fy", "cx", "cy", "omega")),
    8: ("SIMPLE_RADIAL_FISHEYE", ("f", "cx", "cy", "k")),
    9: ("RADIAL_FISHEYE", ("f", "cx", "cy", "k1", "k2")),
    10: ("THIN_PRISM_FISHEYE", tuple(f"p{i}" for i in range(12))),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", tuple(f"p{i}" for i in range(16))),
}
MODEL_IDS = {name: model_id for model_id, (name, _) in CAMERA_MODELS.items()}
PERSPECTIVE = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")


class _Truncated(Exception):
    pass


def _read(file: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) != size:
        raise _Truncated
    return struct.unpack(fmt, data)


def _camera(model_id_or_name, width: int, height: int, params: list[float], where: str) -> dict:
    name, names = CAMERA_MODELS.get(model_id_or_name, (None, ()))
    if name is None and model_id_or_name in MODEL_IDS:
        name, names = CAMERA_MODELS[MODEL_IDS[model_id_or_name]]
    if name is None:
        raise MipNerfError(f"{where}: unknown COLMAP camera model {model_id_or_name!r}")
    if len(params) != len(names):
        raise MipNerfError(f"{where}: camera model {name} needs {len(names)} parameters, got {len(params)}")
    values = dict(zip(names, params))
    if name not in PERSPECTIVE:
        raise MipNerfError(
            f"{where}: camera model {name} is not a pinhole; undistort the images first "
            "(`colmap image_undistorter` writes a PINHOLE model)"
        )
    fx = values.get("fx", values.get("f"))
    fy = values.get("fy", values.get("f"))
    if width < 1 or height < 1 or fx <= 0 or fy <= 0:
        raise MipNerfError(f"{where}: camera {width}x{height} with focal {fx:g}, {fy:g}; sizes and focals must be > 0")
    if name == "SIMPLE_RADIAL":
        values["k1"] = values.pop("k")
    return {
        "size": (int(height), int(width)),
        "intrinsics": [fx, fy, values["cx"], values["cy"]],
        "distortion": opencv_coefficients(values),
    }


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the lines that are not comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MipNerfError(f"{path}: cannot read it as text ({error})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if not line.lstrip().startswith("#")]


def _read_cameras_txt(path: Path) -> dict[int, dict]:
    cameras = {}
    for number, line in _lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            params = [float(x) for x in fields[4:]]
        except (ValueError, IndexError):
            raise MipNerfError(f"{path}: line {number} is not 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'") from None
        cameras[camera_id] = _camera(model, width, height, params, f"{path}: camera {camera_id}")
    return cameras


def _read_images_txt(path: Path) -> list[dict]:
    lines = _lines(path)
    while lines and not lines[-1][1]:
        lines.pop()
    images = []
    for k in range(0, len(lines), 2):
        number, header = lines[k]
        fields = header.split()
        try:
            image_id = int(fields[0])
            qvec = [float(x) for x in fields[1:5]]
            tvec = [float(x) for x in fields[5:8]]
            camera_id, name = int(fields[8]), " ".join(fields[9:])
            if not name:
                raise ValueError
            points = lines[k + 1][1].split() if k + 1 < len(lines) else []
            ids = np.array([int(x) for x in points[2::3]], dtype=np.int64)
        except (ValueError, IndexError):
            raise MipNerfError(
                f"{path}: line {number} is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME' "
                "followed by a line of 'X Y POINT3D_ID' triples"
            ) from None
        images.append({"id": image_id, "qvec": qvec, "tvec": tvec, "camera_id": camera_id, "name": name, "ids": ids})
    return images


def _read_points_txt(path: Path) -> dict[int, tuple[np.ndarray, bool]]:
    points = {}
    for number, line in _lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            xyz, error, track_length = (
                np.array([float(x) for x in fields[1:4]]),
                float(fields[7]),
                (len(fields) - 8) // 2,
            )
            points[int(fields[0])] = (xyz, bool(reliable_points(track_length, error)))
        except (ValueError, IndexError):
            raise MipNerfError(f"{path}: line {number} is not 'POINT3D_ID X Y Z R G B ERROR TRACK...'") from None
    return points


def _read_cameras_bin(file: BinaryIO, path: Path) -> dict[int, dict]:
    cameras = {}
    (count,) = _read(file, "<Q")
    for _ in range(count):
        camera_id, model_id, width, height = _read(file, "<iiQQ")
        names = CAMERA_MODELS.get(model_id, (None, ()))[1]
        if not names:
            raise MipNerfError(f"{path}: camera {camera_id} has unknown COLMAP model id {model_id}")
        params = list(_read(file, f"<{len(names)}d"))
        cameras[camera_id] = _camera(model_id, width, height, params, f"{path}: camera {camera_id}")
    return cameras


def _read_images_bin(file: BinaryIO, path: Path) -> list[dict]:
    images = []
    (count,) = _read(file, "<Q")
    observation = np.dtype([("xy", "<f8", 2), ("id", "<i8")])
    for _ in range(count):
        image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = _read(file, "<i7di")
        name = bytearray()
        while (char := file.read(1)) not in (b"\x00", b""):
            name += char
        if char == b"":
            raise _Truncated
        (num_points,) = _read(file, "<Q")
        data = file.read(num_points * observation.itemsize)
        if len(data) != num_points * observation.itemsize:
            raise _Truncated
        ids = np.frombuffer(data, dtype=observation)["id"].astype(np.int64)
        images.append(
            {
                "id": image_id,
                "qvec": [qw, qx, qy, qz],
                "tvec": [tx, ty, tz],
                "camera_id": camera_id,
                "name": name.decode("utf-8", "replace"),
                "ids": ids,
            }
        )
    return images


def _read_points_bin(file: BinaryIO, path: Path) -> dict[int, tuple[np.ndarray, bool]]:
    points = {}
    (count,) = _read(file, "<Q")
    for _ in range(count):
        values = _read(file, "<Q3d3BdQ")
        point_id, xyz, error, track_length = values[0], np.array(values[1:4]), values[7], values[8]
        if len(file.read(8 * track_length)) != 8 * track_length:
            raise _Truncated
        points[point_id] = (xyz, bool(reliable_points(track_length, error)))
    return points


def _read_model_file(folder: Path, stem: str, readers) -> object:
    binary, text = folder / f"{stem}.bin", folder / f"{stem}.txt"
    if binary.is_file():
        try:
            with open(binary, "rb") as file:
                return readers[0](file, binary)
        except _Truncated:
            raise MipNerfError(f"{binary}: truncated or not a COLMAP binary file; export the model again") from None
        except OSError as error:
            raise MipNerfError(f"{binary}: cannot read ({error.strerror or error})") from None
    if text.is_file():
        return readers[1](text)
    raise MipNerfError(f"{folder}: no {stem}.bin or {stem}.txt; a COLMAP model needs cameras, images and points3D")


def rotation_from_quaternion(qvec) -> np.ndarray:
    """(3, 3) float64 rotation of the unit quaternion (w, x, y, z) (normalised first):
    `core.quaternions.rotation_from_quaternion`, the package's one conversion."""
    import torch

    from mipnerf_cli.core.quaternions import rotation_from_quaternion as rotation

    return rotation(torch.as_tensor(np.asarray(qvec, dtype=np.float64))).numpy()


def opengl_cam2world(qvec, tvec) -> np.ndarray:
    """(3, 4) OpenGL camera-to-world of a COLMAP image (world-to-camera ``qvec``, ``tvec``, OpenCV axes)."""
    return opengl_from_colmap(rotation_from_quaternion(qvec), tvec)


def opengl_from_colmap(rotation: np.ndarray, translation) -> np.ndarray:
    """(3, 4) OpenGL camera-to-world (x right, y up, z back) of COLMAP's world-to-camera
    ``rotation`` (3, 3) and ``translation`` (3,) (OpenCV axes: x right, y down, z forward)."""
    centre = -rotation.T @ np.asarray(translation, dtype=np.float64)
    return np.concatenate([rotation.T @ np.diag([1.0, -1.0, -1.0]), centre[:, None]], 1)


def image_bounds(qvec, tvec, xyz: np.ndarray) -> tuple[float, float] | None:
    """(near, far) of an image from the points ``xyz`` (P, 3) it observes (module docstring), or None."""
    if len(xyz) == 0:
        return None
    return depth_bounds(xyz @ rotation_from_quaternion(qvec)[2] + float(tvec[2]))


def read_colmap(scene: Path, factor: int = 0) -> CaptureCameras:
    """The cameras of the COLMAP model under ``scene`` (module docstring); images from
    ``scene/images`` (``scene/images_<factor>`` with a factor), matched by name."""
    scene = Path(scene)
    folder = colmap_model_folder(scene)
    if folder is None:
        raise MipNerfError(f"{scene}: no COLMAP model (sparse/0/cameras.bin or .txt)")
    cameras = _read_model_file(folder, "cameras", (_read_cameras_bin, _read_cameras_txt))
    images = _read_model_file(folder, "images", (_read_images_bin, _read_images_txt))
    points = _read_model_file(folder, "points3D", (_read_points_bin, _read_points_txt))
    if not images:
        raise MipNerfError(f"{folder}: the model has no registered images")
    image_dir = scene / (f"images_{factor}" if factor else "images")
    if not image_dir.is_dir():
        raise MipNerfError(
            f"{image_dir}: folder not found; a COLMAP scene keeps its photos in images/"
            + (f" (and images shrunk {factor} times in images_{factor}/ for --factor {factor})" if factor else "")
        )
    images.sort(key=lambda image: image["name"])
    missing = [image["name"] for image in images if not (image_dir / image["name"]).is_file()]
    if missing:
        raise MipNerfError(
            f"{image_dir / missing[0]}: image file not found ({len(missing)} of the model's {len(images)} images "
            f"missing from {image_dir})"
        )
    unknown = [image["camera_id"] for image in images if image["camera_id"] not in cameras]
    if unknown:
        raise MipNerfError(f"{folder}: an image uses camera {unknown[0]}, which is not in the cameras file")
    all_xyz = np.array([xyz for xyz, _ in points.values()], dtype=np.float64).reshape(-1, 3)
    bounds = []
    for image in images:
        seen = [points[i] for i in image["ids"].tolist() if i in points]
        trusted = [xyz for xyz, reliable in seen if reliable] or [xyz for xyz, _ in seen]
        xyz = np.array(trusted, dtype=np.float64).reshape(-1, 3)
        bounds.append(image_bounds(image["qvec"], image["tvec"], xyz))
    known = [b for b in bounds if b is not None]
    bound_array = None
    if known:
        fill = (min(b[0] for b in known), max(b[1] for b in known))
        bound_array = np.array([b if b is not None else fill for b in bounds], dtype=np.float64)
    return CaptureCameras(
        files=[image_dir / image["name"] for image in images],
        cam2world=np.stack([opengl_cam2world(image["qvec"], image["tvec"]) for image in images]),
        intrinsics=np.array([cameras[image["camera_id"]]["intrinsics"] for image in images], dtype=np.float64),
        sizes=np.array([cameras[image["camera_id"]]["size"] for image in images], dtype=np.int64),
        bounds=bound_array,
        points=all_xyz if len(all_xyz) else None,
        scene_kind=recorded_scene_kind(scene),
        source=folder,
        distortion=distortion_or_none([cameras[image["camera_id"]]["distortion"] for image in images]),
    )
