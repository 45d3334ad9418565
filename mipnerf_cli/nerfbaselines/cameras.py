"""nerfbaselines cameras and datasets -> this project's ImageSet and rays: the one place that
knows nerfbaselines' conventions.

nerfbaselines (``nerfbaselines.Cameras``) gives per camera an OpenCV camera-to-world matrix
``poses`` (N, 3, 4) (x right, y down, looking down +z), ``intrinsics`` (N, 4) = fx, fy, cx, cy
in pixels with pixel centres at +0.5, a camera model (N,) and its ``distortion_parameters``,
``image_sizes`` (N, 2) = W, H and ``nears_fars`` (N, 2) or None. A dataset's metadata names
its ``background_color`` (uint8 RGB, or None) and ``color_space``.

This project (``core.rays``, ``data.imageset``) uses OpenGL cameras (x right, y up, looking
down -z): the same matrix with its y and z columns negated, and the same fx, fy, cx, cy
(``core.rays.pix2cam_general``). Only pinhole cameras without distortion are taken: the
method says so (``supported_camera_models``), and nerfbaselines then undistorts the images
of other cameras when it loads a dataset and around every evaluation render.

Backgrounds: white -> the model composites on white (``white_bkgd``), as Blender scenes are
trained; black or none -> no compositing, RGBA images composited on black first (as
nerfbaselines' evaluation does); any other colour is refused.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.data.cameras import opengl_from_opencv, pix2cam_from_intrinsics
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.errors import MipNerfError

PINHOLE = 0  # nerfbaselines.camera_model_to_int("pinhole")
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def check_pinhole(cameras) -> None:
    """MipNerfError unless every camera is a pinhole camera without distortion."""
    models = np.asarray(cameras.camera_models).reshape(-1)
    distortion = np.asarray(cameras.distortion_parameters)
    if np.any(models != PINHOLE) or (distortion.size and np.any(distortion != 0)):
        raise MipNerfError(
            "mipnerf renders pinhole cameras without distortion only; nerfbaselines undistorts other "
            "cameras when the method declares supported_camera_models = {'pinhole'}"
        )


def white_background(metadata: Mapping[str, Any]) -> bool:
    """Whether a dataset with this metadata is trained composited on white (see module docstring)."""
    if metadata.get("color_space", "srgb") != "srgb":
        raise MipNerfError(f"mipnerf trains on sRGB images; this dataset is {metadata.get('color_space')}")
    colour = metadata.get("background_color")
    if colour is None:
        return False
    colour = tuple(int(c) for c in np.asarray(colour).reshape(-1)[:3])
    if colour == WHITE:
        return True
    if colour == BLACK:
        return False
    raise MipNerfError(f"mipnerf composites on white or black only; the dataset's background is {colour}")


def near_far(cameras, fallback: Optional[tuple[float, float]] = None) -> tuple[float, float]:
    """One (near, far) for all rays: the smallest near and the largest far of ``cameras``,
    else ``fallback`` (MipNerfError when the cameras have none and there is no fallback)."""
    bounds = cameras.nears_fars
    if bounds is None:
        if fallback is None:
            raise MipNerfError("the cameras have no near/far bounds (nears_fars), which mipnerf needs")
        return fallback
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    return float(bounds[:, 0].min()), float(bounds[:, 1].max())


def rgba_image(image: np.ndarray, white_bkgd: bool) -> torch.Tensor:
    """(H, W, 4) uint8 RGBA for an ImageSet from a nerfbaselines image (H, W, 3 or 4) uint8.

    Without white compositing an RGBA image is composited on black here (premultiplied,
    rounded), so the model learns what nerfbaselines scores."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise MipNerfError(f"expected (H, W, 3|4) uint8 images, got {array.shape} {array.dtype}")
    if array.shape[-1] == 3:
        alpha = np.full(array.shape[:2] + (1,), 255, dtype=np.uint8)
        return torch.from_numpy(np.concatenate([array, alpha], -1))
    if white_bkgd:
        return torch.from_numpy(np.ascontiguousarray(array))
    alpha = array[..., 3:].astype(np.float32) / 255.0
    rgb = np.clip(np.round(array[..., :3].astype(np.float32) * alpha), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.concatenate([rgb, np.full_like(array[..., 3:], 255)], -1))


def image_set(
    cameras,
    images: Optional[Sequence[np.ndarray]],
    white_bkgd: bool,
    bounds: tuple[float, float],
    names: Optional[Sequence[str]] = None,
    lossmult: Optional[np.ndarray] = None,
) -> ImageSet:
    """An ImageSet of nerfbaselines ``cameras`` (N) and their ``images`` (None: blank images,
    for rays only), with one ``bounds`` = (near, far) for all rays.

    lossmult: (N,) per-image loss weights (None: 1)."""
    check_pinhole(cameras)
    poses = np.asarray(cameras.poses).reshape(-1, *np.asarray(cameras.poses).shape[-2:])
    sizes = np.asarray(cameras.image_sizes).reshape(-1, 2)
    intrinsics = np.asarray(cameras.intrinsics, dtype=np.float64).reshape(-1, 4)
    count = len(poses)
    if images is None:
        rgba = [torch.zeros(int(h), int(w), 4, dtype=torch.uint8) for w, h in sizes]
    else:
        rgba = [rgba_image(image, white_bkgd) for image in images]
        for i, (image, (w, h)) in enumerate(zip(rgba, sizes)):
            if tuple(image.shape[:2]) != (int(h), int(w)):
                raise MipNerfError(f"image {i} is {image.shape[1]}x{image.shape[0]}, its camera {w}x{h}")
    return ImageSet(
        names=list(names) if names is not None else [f"{i:05d}" for i in range(count)],
        images=rgba,
        heights=[int(h) for _, h in sizes],
        widths=[int(w) for w, _ in sizes],
        levels=[0] * count,
        cam2world=torch.from_numpy(opengl_from_opencv(poses)),
        focal=torch.from_numpy(intrinsics[:, 0].copy()),
        pix2cam=torch.from_numpy(pix2cam_from_intrinsics(intrinsics)),
        lossmult=torch.ones(count) if lossmult is None else torch.as_tensor(lossmult, dtype=torch.float32),
        near=bounds[0],
        far=bounds[1],
        white_bkgd=white_bkgd,
    )


def dataset_image_set(dataset: Mapping[str, Any]) -> ImageSet:
    """The ImageSet a nerfbaselines ``dataset`` (images loaded) trains on.

    Multiscale data (metadata ``multiscale_base_width``, set by this package's loader) weighs
    each image's rays by ``(base_width / width)**2``, the reference's 4**level."""
    cameras = dataset["cameras"]
    metadata = dataset.get("metadata") or {}
    white = white_background(metadata)
    lossmult = None
    base = metadata.get("multiscale_base_width")
    if base is not None:
        widths = np.asarray(cameras.image_sizes).reshape(-1, 2)[:, 0].astype(np.float64)
        lossmult = (float(base) / widths) ** 2
    names = [str(p) for p in dataset.get("image_paths") or []] or None
    return image_set(cameras, dataset["images"], white, near_far(cameras), names=names, lossmult=lossmult)


def camera_rays(camera, bounds: tuple[float, float]) -> tuple[RayBundle, int, int]:
    """(the H*W rays of one nerfbaselines camera, row-major; H; W), with ``bounds`` = (near, far)."""
    cameras = image_set(camera, None, white_bkgd=False, bounds=bounds)
    if cameras.num_images != 1:
        raise MipNerfError(f"render takes one camera, got {cameras.num_images}")
    return cameras.image_rays(0)[0], cameras.heights[0], cameras.widths[0]
