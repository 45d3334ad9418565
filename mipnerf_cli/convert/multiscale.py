"""Blender scene -> multiscale scene, as google/mipnerf's scripts/convert_blender_data.py does.

For each split, each image is written at ``n_down`` scales ``images_<split>/<iii>_d<j>.png``
(j = 0 full size, each next level the 2x2 mean of the previous one) and ``metadata.json``
lists per image: file_path, cam2world, width, height, focal, label, near, far, lossmult,
pix2cam, in that order, ``indent=4``. The pixel arithmetic follows the reference exactly:
float32 ``u8 / 255``, each level stored as ``uint8(x * 255)`` (truncation), the next level
the float32 mean of 2x2 blocks. Where the reference would fail or write something odd:

* an image without alpha (RGB, grey, palette) is written as RGBA with alpha 255 (opaque);
  the reference would keep 3 channels, which its own loader then misreads as RGB+alpha;
* only the splits that have a transforms_<split>.json are converted (train is required).

Everything is written into a temporary folder first and moved into place at the end, so
an error or an interrupt leaves OUT_DIR as it was.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable

import numpy as np

from mipnerf_cli.data.cameras import focal_from_camera_angle, pix2cam_matrices
from mipnerf_cli.data.formats.transforms import (
    SPLITS,
    BlenderSplit,
    check_image_sizes,
    read_blender_split,
    transforms_path,
)
from mipnerf_cli.data.images import read_rgba, run_in_threads, write_png
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.io.staging import StagedFolder, cannot_write

MULTISCALE_NEAR = 2.0
MULTISCALE_FAR = 6.0


@dataclasses.dataclass(frozen=True)
class SceneToConvert:
    """A checked Blender scene: its name (= output folder name), the parsed splits present,
    and the common (H, W) of each split's images."""

    name: str
    source: Path
    splits: dict[str, BlenderSplit]
    sizes: dict[str, tuple[int, int]]

    @property
    def num_images(self) -> int:
        return sum(len(split.frames) for split in self.splits.values())


def find_scenes(blender_dir: Path) -> list[Path]:
    """``blender_dir`` itself if it holds transforms_train.json, else its sub-folders that do
    (sorted). MipNerfError if the folder is missing or holds no scene."""
    blender_dir = Path(blender_dir)
    if not blender_dir.exists():
        raise MipNerfError(
            f"{blender_dir}: folder not found; pass a Blender scene folder (with transforms_train.json) or a folder of scenes"
        )
    if not blender_dir.is_dir():
        raise MipNerfError(f"{blender_dir}: not a folder; pass a Blender scene folder or a folder of scenes")
    if transforms_path(blender_dir, "train").is_file():
        return [blender_dir]
    scenes = sorted(p for p in blender_dir.iterdir() if p.is_dir() and transforms_path(p, "train").is_file())
    if not scenes:
        raise MipNerfError(
            f"{blender_dir}: no Blender scene found (expected transforms_train.json in it or in its sub-folders)"
        )
    return scenes


def plan_scene(scene_dir: Path, n_down: int) -> SceneToConvert:
    """Parse and check every JSON and PNG header of a scene before anything is written."""
    splits = {
        split: read_blender_split(scene_dir, split) for split in SPLITS if transforms_path(scene_dir, split).is_file()
    }
    divisor = 2 ** (n_down - 1)
    reason = f" (needed for {n_down} levels of 2x2 downsampling; lower --n-down or crop the images)"
    sizes = {name: check_image_sizes(split, divisor, reason) for name, split in splits.items()}
    return SceneToConvert(Path(scene_dir).resolve().name, Path(scene_dir), splits, sizes)


def _reference_down2(image: np.ndarray) -> np.ndarray:
    """The reference's 2x2 block mean, verbatim: float32 ``np.mean`` over a 5-D reshape."""
    height, width = image.shape[:2]
    return np.mean(np.reshape(image, [height // 2, 2, width // 2, 2, -1]), (1, 3))


def _fast_down2(image: np.ndarray) -> np.ndarray:
    """The same 2x2 mean as four strided adds, ~3x faster. numpy sums each block in this
    order (left, right of the top row, then the bottom row), so the float32 results are
    identical; :func:`_fast_down2_is_exact` checks that on this numpy before it is used."""
    total = image[0::2, 0::2] + image[0::2, 1::2]
    total += image[1::2, 0::2]
    total += image[1::2, 1::2]
    total /= 4
    return total


@functools.cache
def _fast_down2_is_exact() -> bool:
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 256, (64, 48, 4)).astype(np.float32) / 255.0) * rng.random((64, 48, 4), dtype=np.float32)
    for _ in range(3):
        if not np.array_equal(_fast_down2(image), _reference_down2(image)):
            return False
        image = _reference_down2(image)
    return True


def image_levels(rgba: np.ndarray, n_down: int) -> list[np.ndarray]:
    """``(H, W, 4)`` uint8 -> ``n_down`` uint8 images, each half the size of the previous one,
    computed exactly as the reference does (float32 ``/ 255``, truncating ``uint8(x * 255)``,
    float32 mean of 2x2 blocks)."""
    down2 = _fast_down2 if rgba.shape[-1] == 4 and _fast_down2_is_exact() else _reference_down2
    image = rgba.astype(np.float32) / 255.0
    levels = []
    for level in range(n_down):
        levels.append((image * 255).astype(np.uint8))
        if level + 1 < n_down:
            image = down2(image)
    return levels


def split_metadata(split: BlenderSplit, size: tuple[int, int], n_down: int, folder: str) -> dict:
    """The metadata.json entry of one split: per-image lists, image-major then level, with
    the reference's keys, order and float64 arithmetic."""
    height, width = size
    focal = focal_from_camera_angle(width, split.camera_angle_x)
    cam2worlds = np.stack([np.asarray(frame.transform_matrix) for frame in split.frames], axis=0)
    return level_metadata(cam2worlds, width, height, focal, n_down, folder, MULTISCALE_NEAR, MULTISCALE_FAR)


def level_metadata(
    cam2worlds: np.ndarray, width: int, height: int, focal: float, n_down: int, folder: str, near: float, far: float
) -> dict:
    """metadata.json lists of the cameras ``cam2worlds`` (I, 4, 4) at ``n_down`` levels, image-major
    then level: ``folder/<iii>_d<level>.png``, sides ``// 2**level``, focal ``/ 2**level``,
    lossmult ``4**level``, the same near / far for all, and the pix2cam matrices. The Blender
    converter and `mipnerf convert PHOTOS --multiscale` both write these."""
    meta: dict[str, list] = {
        key: [] for key in ("file_path", "cam2world", "width", "height", "focal", "label", "near", "far", "lossmult")
    }
    for i in range(len(cam2worlds)):
        for level in range(n_down):
            meta["file_path"].append(f"{folder}/{i:03d}_d{level}.png")
            meta["cam2world"].append(cam2worlds[i].tolist())
            meta["width"].append(width // 2**level)
            meta["height"].append(height // 2**level)
            meta["focal"].append(focal / 2**level)
            meta["label"].append(level)
            meta["near"].append(near)
            meta["far"].append(far)
            meta["lossmult"].append(4.0**level)
    meta["pix2cam"] = pix2cam_matrices(meta["focal"], meta["width"], meta["height"]).tolist()
    return meta


def stage_scenes(out_dir: Path, names: list[str]) -> tuple[list[StagedFolder], list[Path]]:
    """Staged folders for the scenes ``names`` under ``out_dir`` and the folder each scene is
    written to: one staged OUT_DIR holding every scene when OUT_DIR does not exist yet (it then
    appears whole), else one staged folder per scene inside it (each replaces its old scene)."""
    if not out_dir.exists():
        staged = StagedFolder.create(out_dir)
        return [staged], [staged.path / name for name in names]
    stages: list[StagedFolder] = []
    try:
        for name in names:
            stages.append(StagedFolder.create(out_dir / name))
    except BaseException:
        for stage in stages:
            stage.discard()
        raise
    return stages, [stage.path for stage in stages]


def convert_blender(
    blender_dir: Path | str,
    out_dir: Path | str,
    n_down: int = 4,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    scenes: list[SceneToConvert] | None = None,
) -> list[Path]:
    """Convert every Blender scene found in ``blender_dir`` to ``out_dir/<scene name>``.

    Returns the written scene folders. progress(done, total) is called after each image
    (all levels written). ``scenes`` may be given from :func:`plan_conversion` to skip
    checking twice. MipNerfError, with OUT_DIR left as it was, on any problem.
    """
    out_dir = Path(out_dir)
    if scenes is None:
        scenes = plan_conversion(blender_dir, out_dir, n_down, overwrite)
    stages: list[StagedFolder] = []
    try:
        stages, folders = stage_scenes(out_dir, [scene.name for scene in scenes])
        jobs = []
        for scene, scene_dir in zip(scenes, folders):
            for split_name, split in scene.splits.items():
                split_dir = scene_dir / f"images_{split_name}"
                split_dir.mkdir(parents=True)
                for i, frame in enumerate(split.frames):
                    jobs.append((frame.image_path, scene.sizes[split_name], split_dir, i))

        def convert_image(job_index: int) -> None:
            source, size, split_dir, i = jobs[job_index]
            rgba = read_rgba(source)
            if rgba.shape[:2] != size:
                raise MipNerfError(f"{source}: decoded size {rgba.shape[0]}x{rgba.shape[1]} differs from its header")
            for level, pixels in enumerate(image_levels(rgba, n_down)):
                write_png(split_dir / f"{i:03d}_d{level}.png", pixels)

        run_in_threads(convert_image, len(jobs), workers, progress)
        for scene, scene_dir in zip(scenes, folders):
            metadata = {
                name: split_metadata(split, scene.sizes[name], n_down, f"images_{name}")
                for name, split in scene.splits.items()
            }
            with open(scene_dir / "metadata.json", "w", encoding="utf-8") as file:
                json.dump(metadata, file, ensure_ascii=False, indent=4)
        for stage in stages:
            stage.commit()
        return [out_dir / scene.name for scene in scenes]
    except OSError as error:
        raise cannot_write(out_dir, error) from None
    finally:
        for stage in stages:
            stage.discard()


def plan_conversion(blender_dir: Path | str, out_dir: Path | str, n_down: int, overwrite: bool) -> list[SceneToConvert]:
    """Every check that needs no decoding: scenes, JSON, PNG headers and sizes, OUT_DIR."""
    if not isinstance(n_down, int) or n_down < 1:
        raise MipNerfError(f"--n-down must be a positive integer, got {n_down!r}")
    scenes = [plan_scene(scene_dir, n_down) for scene_dir in find_scenes(Path(blender_dir))]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MipNerfError(f"{out_dir}: exists and is not a folder; choose another OUT_DIR")
    for ancestor in out_dir.parents:
        if ancestor.exists() and not ancestor.is_dir():
            raise MipNerfError(f"{out_dir}: {ancestor} is a file, not a folder; choose another OUT_DIR")
    for scene in scenes:
        target = out_dir / scene.name
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise MipNerfError(f"{target} already exists; pass --overwrite to replace it, or choose another OUT_DIR")
        if overwrite and target.exists() and not (target / "metadata.json").is_file():
            raise MipNerfError(
                f"{target} exists but holds no metadata.json; refusing to replace it, choose another OUT_DIR"
            )
        if overwrite and target.exists() and target.resolve() == scene.source.resolve():
            raise MipNerfError(f"{target}: the output would replace the source scene; choose another OUT_DIR")
    return scenes
