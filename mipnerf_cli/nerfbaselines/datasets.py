"""The multiscale Blender loader for nerfbaselines: a scene converted by ``mipnerf convert``
(``metadata.json``: per image its file, cam2world, size, pix2cam, lossmult, near, far) as a
nerfbaselines dataset, so the paper's multiscale protocol can be trained and scored there.

Cameras become nerfbaselines' OpenCV poses and fx, fy, cx, cy (the inverse of
`data.cameras.opengl_from_opencv` and ``pix2cam``); ``multiscale_base_width`` in the metadata (the
widest image) lets the method weigh each image's rays by 4**level, as the reference does.
nerfbaselines scores every image the same; the paper averages each scale on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nerfbaselines import DatasetNotFoundError, new_cameras, new_dataset

from mipnerf_cli.data.cameras import opengl_from_opencv
from mipnerf_cli.data.formats.multiscale import METADATA, read_split
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.nerfbaselines.cameras import PINHOLE

LOADER_ID = "blender-multiscale"


def intrinsics_from_pix2cam(pix2cam: np.ndarray) -> np.ndarray:
    """(N, 4) fx, fy, cx, cy from inverse intrinsics (N, 3, 3) ``[[1/fx, 0, -cx/fx], [0, -1/fy, cy/fy], [0, 0, -1]]``."""
    fx = 1.0 / pix2cam[:, 0, 0]
    fy = -1.0 / pix2cam[:, 1, 1]
    return np.stack([fx, fy, -pix2cam[:, 0, 2] * fx, pix2cam[:, 1, 2] * fy], -1)


def load_multiscale_blender(path: str, split: str, **kwargs):
    """nerfbaselines' ``LoadDatasetFunction`` for converted multiscale scenes (train / test /
    val splits; ``val`` as the reference names it)."""
    del kwargs
    scene = Path(path)
    if not (scene / METADATA).is_file():
        raise DatasetNotFoundError(f"{scene} has no {METADATA} (not a scene made by `mipnerf convert`)")
    try:
        entry = read_split(scene, split)
    except MipNerfError as error:
        raise DatasetNotFoundError(str(error)) from None
    count = len(entry["file_path"])
    cam2world = np.array([np.asarray(m, dtype=np.float64)[:3, :4] for m in entry["cam2world"]])
    poses = opengl_from_opencv(cam2world)  # the same flip turns OpenGL back into OpenCV
    sizes = np.stack([np.array(entry["width"]), np.array(entry["height"])], -1).astype(np.int32)
    return new_dataset(
        cameras=new_cameras(
            poses=poses.astype(np.float32),
            intrinsics=intrinsics_from_pix2cam(np.array(entry["pix2cam"], dtype=np.float64)).astype(np.float32),
            camera_models=np.full(count, PINHOLE, dtype=np.int32),
            distortion_parameters=np.zeros((count, 0), dtype=np.float32),
            image_sizes=sizes,
            nears_fars=np.stack([entry["near"], entry["far"]], -1).astype(np.float32),
        ),
        image_paths_root=str(scene),
        image_paths=[str(scene / p) for p in entry["file_path"]],
        mask_paths=None,
        metadata={
            "color_space": "srgb",
            "type": "object-centric",
            "evaluation_protocol": "nerf",
            "background_color": np.array([255, 255, 255], dtype=np.uint8),
            "expected_scene_scale": 4,
            "multiscale_base_width": int(sizes[:, 0].max()),
        },
    )
