"""Multiscale scenes as ``mipnerf convert`` (and the reference converter) writes them:
``metadata.json`` with per-image lists for each split, and ``images_<split>/<iii>_d<j>.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mipnerf_cli.data.cameras import SplitCameras
from mipnerf_cli.data.formats.transforms import check_matrix, is_number, read_json
from mipnerf_cli.data.images import load_rgba_into, png_size
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.errors import MipNerfError

METADATA = "metadata.json"
REQUIRED_KEYS = ("file_path", "cam2world", "width", "height", "pix2cam", "lossmult", "near", "far")


def _check_split(meta: Any, path: Path, split: str) -> dict[str, list]:
    if not isinstance(meta, dict):
        raise MipNerfError(f"{path}: expected a JSON object with one entry per split (train, val, test)")
    if split not in meta:
        have = ", ".join(sorted(meta)) or "none"
        raise MipNerfError(f"{path}: no '{split}' split (it has: {have})")
    entry = meta[split]
    where = f"{path}: {split}"
    if not isinstance(entry, dict):
        raise MipNerfError(f"{where} must be an object of per-image lists")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise MipNerfError(f"{where} has no '{key}' list; re-run `mipnerf convert`")
    count = len(entry["file_path"]) if isinstance(entry["file_path"], list) else -1
    if count <= 0:
        raise MipNerfError(f"{where}.file_path must be a non-empty list")
    for key in (*REQUIRED_KEYS, "label", "focal"):
        if key in entry and (not isinstance(entry[key], list) or len(entry[key]) != count):
            raise MipNerfError(f"{where}.{key} must be a list of {count} entries, one per image")
    for i in range(count):
        at = f"{where}: image {i}"
        if not isinstance(entry["file_path"][i], str) or not entry["file_path"][i]:
            raise MipNerfError(f"{at}: file_path must be a non-empty string")
        for key in ("width", "height"):
            value = entry[key][i]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MipNerfError(f"{at}: {key} must be a positive integer, got {value!r}")
        for key in ("lossmult", "near", "far", *(k for k in ("focal",) if k in entry)):
            if not is_number(entry[key][i]):
                raise MipNerfError(f"{at}: {key} must be a finite number, got {entry[key][i]!r}")
        if "label" in entry and (not isinstance(entry["label"][i], int) or isinstance(entry["label"][i], bool)):
            raise MipNerfError(f"{at}: label must be an integer, got {entry['label'][i]!r}")
        check_matrix(entry["cam2world"][i], f"{at}: cam2world")
        check_matrix(entry["pix2cam"][i], f"{at}: pix2cam", rows=(3,), columns=3)
    for key in ("near", "far"):
        if len(set(entry[key])) > 1:
            raise MipNerfError(f"{where}.{key}: images with different {key} bounds are not supported")
    if not 0 <= entry["near"][0] < entry["far"][0]:
        raise MipNerfError(f"{where}: need 0 <= near < far, got near {entry['near'][0]} far {entry['far'][0]}")
    return entry


def read_split(scene_dir: Path, split: str) -> dict[str, list]:
    """The checked per-image lists of one split of a converted scene's metadata.json
    (MipNerfError naming the file for anything missing or malformed)."""
    path = Path(scene_dir) / METADATA
    return _check_split(read_json(path), path, split)


def multiscale_cameras(scene_dir: Path, split: str) -> SplitCameras:
    """The cameras of one split of a converted multiscale scene (per-image size, focal, pix2cam
    and lossmult from metadata.json, checked against the PNG headers; ``levels`` from its labels)."""
    path = Path(scene_dir) / METADATA
    entry = read_split(scene_dir, split)
    image_paths = [Path(scene_dir) / file_path for file_path in entry["file_path"]]
    sizes = [(h, w) for h, w in zip(entry["height"], entry["width"])]
    for image_path, size in zip(image_paths, sizes):
        found = png_size(image_path)
        if found != size:
            raise MipNerfError(
                f"{image_path}: image is {found[0]}x{found[1]} (HxW) but {path.name} says {size[0]}x{size[1]}"
            )
    pix2cam = np.array(entry["pix2cam"], dtype=np.float64)
    if "focal" in entry:
        focal = np.array(entry["focal"], dtype=np.float64)
    else:
        focal = 1.0 / pix2cam[:, 0, 0]
    if "label" in entry:
        levels = list(entry["label"])
    else:  # lossmult is 4**level in converted data
        levels = [int(round(math.log(max(m, 1.0), 4))) for m in entry["lossmult"]]
    return SplitCameras(
        names=[Path(p).stem for p in entry["file_path"]],
        files=image_paths,
        heights=[h for h, _ in sizes],
        widths=[w for _, w in sizes],
        levels=levels,
        cam2world=torch.tensor(np.array([np.asarray(m, dtype=np.float64)[:3] for m in entry["cam2world"]])),
        focal=torch.from_numpy(focal),
        pix2cam=torch.from_numpy(pix2cam),
        lossmult=torch.tensor(entry["lossmult"], dtype=torch.float32),
        near=float(entry["near"][0]),
        far=float(entry["far"][0]),
        multiscale=True,
    )


def load_multiscale(
    scene_dir: Path,
    split: str,
    white_bkgd: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImageSet:
    """One split of a converted multiscale scene as an ImageSet (its cameras: :func:`multiscale_cameras`)."""
    cameras = multiscale_cameras(scene_dir, split)
    pixels = load_rgba_into(cameras.files, cameras.sizes, 1, workers, progress)
    return ImageSet.from_cameras(cameras, pixels, white_bkgd)


def metadata_splits(scene_dir: Path) -> list[str]:
    """The split names in a multiscale scene's metadata.json."""
    meta = read_json(Path(scene_dir) / METADATA)
    return list(meta) if isinstance(meta, dict) else []
