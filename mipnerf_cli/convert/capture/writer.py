"""The scene folder of a capture (README "Your own scenes"), written into a staging folder.

* ``images/000000.png`` ...: the undistorted photos in name order, and ``images_2/4/8/`` with
  each side ``floor(side / k)`` (the remainder cropped at the right and bottom, then the mean
  of each k x k block);
* ``transforms.json``: nerfstudio's format (``fl_x, fl_y, cx, cy, w, h``, frames with
  ``file_path`` and an OpenGL camera-to-world ``transform_matrix``) plus per-frame near /
  far, ``scene_kind``, the images left out and the source;
* ``poses_bounds.npy``: LLFF's N x 17 rows, so google/mipnerf's LLFF loader reads the same scene;
* ``sparse/0/``: the undistorted COLMAP model, images renamed as in ``images/``;
* with ``multiscale`` (360° scenes only): ``metadata.json`` and ``images_<split>/`` as
  `mipnerf convert` writes for Blender scenes (4 levels, lossmult 4^level), the poses centred
  and scaled exactly as the LLFF loader does for a 360° scene (``spherify``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mipnerf_cli.convert.multiscale import image_levels, level_metadata
from mipnerf_cli.data.formats.llff import POSES_BOUNDS, read_capture, split_indices
from mipnerf_cli.data.formats.llff_poses import llff_pose_row
from mipnerf_cli.data.images import area_downscale, read_rgba, run_in_threads, write_png
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.reporting import Reporter

TRANSFORMS = "transforms.json"
GENERATOR = "mipnerf convert"
FACTORS = (2, 4, 8)
MULTISCALE_LEVELS = 4


@dataclasses.dataclass(frozen=True)
class PinholeCamera:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def as_json(self) -> dict:
        return {
            "fl_x": self.fx,
            "fl_y": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "w": self.width,
            "h": self.height,
        }


@dataclasses.dataclass(frozen=True)
class Frame:
    """One registered image: its undistorted file, original name, pose, camera and bounds."""

    image_path: Path
    original_name: str
    cam2world: np.ndarray  # (4, 4) OpenGL camera axes
    camera: PinholeCamera
    near: float
    far: float


def reduce(rgb: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W, C)`` -> ``(H // factor, W // factor, C)``: crop the remainder, then block means."""
    height, width = (rgb.shape[0] // factor) * factor, (rgb.shape[1] // factor) * factor
    return area_downscale(np.ascontiguousarray(rgb[:height, :width]), factor)


def write_images(folder: Path, frames: list[Frame], reporter: Reporter, workers: int | None) -> list[str]:
    """images/ and images_2/4/8/; returns the file names, in frame order."""
    names = [f"{i:06d}.png" for i in range(len(frames))]
    folders = [folder / "images"] + [folder / f"images_{k}" for k in FACTORS]
    for sub in folders:
        sub.mkdir()

    def write_one(i: int) -> None:
        rgb = read_rgba(frames[i].image_path)[..., :3]
        write_png(folders[0] / names[i], rgb)
        for factor, sub in zip(FACTORS, folders[1:]):
            write_png(sub / names[i], reduce(rgb, factor))

    with reporter.progress("write images", total=len(frames), unit="images") as bar:
        run_in_threads(write_one, len(frames), workers, lambda done, total: bar.update(1))
    return names


def shared_camera(frames: list[Frame]) -> PinholeCamera | None:
    cameras = {frame.camera for frame in frames}
    return next(iter(cameras)) if len(cameras) == 1 else None


def transforms_json(
    frames: list[Frame], names: list[str], scene_kind: str, unregistered: list[str], source: str
) -> dict:
    shared = shared_camera(frames)
    entries = []
    for frame, name in zip(frames, names):
        entry = {
            "file_path": f"images/{name}",
            "transform_matrix": frame.cam2world.tolist(),
            "original_name": frame.original_name,
            "near": frame.near,
            "far": frame.far,
        }
        if shared is None:
            entry.update(frame.camera.as_json())
        entries.append(entry)
    document: dict = {"camera_model": "PINHOLE"}
    if shared is not None:
        document.update(shared.as_json())
    document.update(
        {
            "frames": entries,
            "scene_kind": scene_kind,
            "unregistered": list(unregistered),
            "source": source,
            "generator": GENERATOR,
        }
    )
    return document


def poses_bounds(frames: list[Frame]) -> np.ndarray:
    """(N, 17) LLFF rows; fx is the focal (LLFF has one)."""
    return np.array(
        [llff_pose_row(f.cam2world, f.camera.height, f.camera.width, f.camera.fx, f.near, f.far) for f in frames],
        dtype=np.float64,
    )


def centre_crop(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """Crop ``(H, W, C)`` to sides divisible by ``multiple``, as evenly as possible on both
    sides (the principal point moves by at most half a pixel)."""
    height, width = rgb.shape[:2]
    top, left = (height % multiple) // 2, (width % multiple) // 2
    return rgb[top : top + height - height % multiple, left : left + width - width % multiple]


def write_multiscale(folder: Path, names: list[str], llffhold: int, reporter: Reporter, workers: int | None) -> None:
    """metadata.json and images_<split>/ of the spherified scene (the scene must be 360°)."""
    capture = read_capture(folder, 0, spherify=True, split="train")
    count = len(names)
    test = split_indices(count, "test", llffhold, folder)
    train = split_indices(count, "train", llffhold, folder)
    if len(train) == 0:
        raise MipNerfError(f"--llffhold {llffhold}: no training images left of {count}; use a larger --llffhold")
    divisor = 2 ** (MULTISCALE_LEVELS - 1)
    near, far = float(0.9 * capture.bounds.min()), float(capture.bounds.max())
    height = capture.height - capture.height % divisor
    width = capture.width - capture.width % divisor
    if height < divisor or width < divisor:
        raise MipNerfError(f"images of {capture.width}x{capture.height} are too small for {MULTISCALE_LEVELS} levels")
    focal = float(capture.focal)
    splits = {"train": train, "test": test}
    jobs = [(split, k, int(index)) for split, indices in splits.items() for k, index in enumerate(indices)]
    for split in splits:
        (folder / f"images_{split}").mkdir()

    def write_one(j: int) -> None:
        split, k, index = jobs[j]
        rgba = read_rgba(folder / "images" / names[index])
        for level, pixels in enumerate(
            image_levels(np.ascontiguousarray(centre_crop(rgba, divisor)), MULTISCALE_LEVELS)
        ):
            write_png(folder / f"images_{split}" / f"{k:03d}_d{level}.png", pixels)

    with reporter.progress("write multiscale", total=len(jobs), unit="images") as bar:
        run_in_threads(write_one, len(jobs), workers, lambda done, total: bar.update(1))
    metadata = {}
    for split, indices in splits.items():
        poses = capture.poses[np.asarray(indices, dtype=np.int64), :3, :4].astype(np.float64)
        cam2worlds = np.concatenate([poses, np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (len(poses), 1, 4))], 1)
        metadata[split] = level_metadata(
            cam2worlds, width, height, focal, MULTISCALE_LEVELS, f"images_{split}", near, far
        )
    metadata["val"] = metadata["test"]
    with open(folder / "metadata.json", "w", encoding="utf-8") as file:
        json.dump({name: metadata[name] for name in ("train", "val", "test")}, file, indent=4)


def write_scene(
    folder: Path,
    frames: list[Frame],
    scene_kind: str,
    unregistered: list[str],
    source: str,
    reporter: Reporter,
    model=None,
    multiscale: bool = False,
    llffhold: int = 8,
    workers: int | None = None,
) -> None:
    """Everything above into the existing (empty, staging) ``folder``; ``model``: the
    undistorted pycolmap.Reconstruction, written to sparse/0 with the new image names."""
    names = write_images(folder, frames, reporter, workers)
    with open(folder / TRANSFORMS, "w", encoding="utf-8") as file:
        json.dump(transforms_json(frames, names, scene_kind, unregistered, source), file, indent=2)
    np.save(folder / POSES_BOUNDS, poses_bounds(frames))
    if model is not None:
        renamed = {frame.original_name: name for frame, name in zip(frames, names)}
        for image in model.images.values():
            image.name = renamed.get(image.name, image.name)
        (folder / "sparse" / "0").mkdir(parents=True)
        model.write_binary(str(folder / "sparse" / "0"))
    if multiscale:
        write_multiscale(folder, names, llffhold, reporter, workers)
