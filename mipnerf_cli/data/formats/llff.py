"""LLFF (forward-facing) and 360° captures as an ImageSet, as google/mipnerf's ``LLFF`` loader.

The cameras come from ``poses_bounds.npy`` (below), or from a nerfstudio / instant-ngp
``transforms.json`` or a COLMAP model, which ``formats/capture.py`` turns into the same arrays
(their own pinhole intrinsics fx, fy, cx, cy are kept for the rays); from there one pipeline.

A scene folder holds ``poses_bounds.npy`` (N x 17: per image a flattened 3x5 matrix
``[down, right, back, position, (H, W, focal)]`` and the near / far depth bounds) and
``images/`` (``images_<factor>/`` for a smaller copy). The loader, step by step as the
reference (``internal/datasets.py``) does it, with the same float32 / float64 mix (the pose
math is ``formats/llff_poses.py``):

1. images sorted by file name (names ending in JPG, jpg or png); H, W from the images and
   focal / factor;
2. axes reordered to ``[right, up, back]`` (camera looks down -z, as the Blender scenes;
   ``opengl_from_llff``);
3. positions and bounds scaled by ``1 / (0.75 * min near)``;
4. recentred on the average pose;
5. with ``spherify``, recentred on the point closest to all optical axes and scaled to the
   unit sphere (for 360° captures);
6. every ``llffhold``-th image (0, 8, 16, ...) is the test split, the others train.

Forward-facing scenes are trained in normalized device coordinates (near 0, far 1): each
ray is moved to the plane z = -1 and projected (``ndc_rays``); the view direction the
network sees is the world-space direction before NDC, not normalized, and the radius comes
from the distances to the neighbouring pixels' NDC origins, as in the reference.

Spherified scenes keep world rays. The reference then uses the config's near / far (0 and
1 in llff.gin), which cuts every ray short on real data; this loader takes
``0.9 * min bound`` and ``max bound`` of the scaled bounds instead (the original NeRF code's
choice) unless near / far are given.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mipnerf_cli.core.rays import RayBundle, pinhole_rays
from mipnerf_cli.data.cameras import SplitCameras, pix2cam_from_intrinsics, pix2cam_matrices
from mipnerf_cli.data.formats.capture import (
    POSES_BOUNDS,
    capture_format,
    llff_poses,
    read_capture_cameras,
    resolve_spherify,
)
from mipnerf_cli.data.formats.llff_poses import (
    SPIRAL_VIEWS,
    ndc_rays,
    opengl_from_llff,
    recenter_poses,
    spherify_poses,
    spiral_poses,
)
from mipnerf_cli.data.images import read_rgba, run_in_threads
from mipnerf_cli.data.imageset import ImageSet
from mipnerf_cli.data.undistort import pinhole_camera, undistort_image, undistortion_maps
from mipnerf_cli.errors import MipNerfError

IMAGE_ENDINGS = ("JPG", "jpg", "png")  # what the reference accepts (case-sensitive)
LLFFHOLD = 8


@dataclasses.dataclass(eq=False)
class LlffImageSet(ImageSet):
    """An ImageSet of an LLFF capture. With ``ndc`` its rays are the reference's NDC rays.

    ndc:          rays in normalized device coordinates (forward-facing scenes).
    spherified:   the poses were spherified (360° capture); then ndc is false.
    render_poses: (V, 3, 4) float64 video path of the scene (spiral, or circle when spherified).
    """

    ndc: bool = False
    spherified: bool = False
    render_poses: torch.Tensor | None = None

    def _rays(self, image: np.ndarray, col: np.ndarray, row: np.ndarray) -> RayBundle:
        world = super()._rays(image, col, row)
        if not self.ndc:
            return world
        heights = np.array(self.heights, dtype=np.int64)[image]
        return ndc_bundle(
            world, self._origins_np[image], self._ray_matrix_np[image], col, row,
            self.focal.numpy()[image], self._widths_np[image], heights,
        )  # fmt: skip

    def pose_rays(self, cam2world: torch.Tensor, width: int, height: int, focal: float) -> RayBundle:
        """The H*W rays (row-major) of a camera at ``cam2world`` (3, 4) with this scene's ray
        rule (NDC or world), e.g. for a video path."""
        return pose_rays(cam2world, width, height, focal, self.near, self.far, self.ndc)


def uses_ndc(kind: str, spherify: bool) -> bool:
    """Whether a model of a scene of `kind` ("blender", "multiscale", "llff") sees its rays in
    NDC: forward-facing captures (not spherified) do, as in the reference. The one NDC rule."""
    return kind == "llff" and not spherify


def ndc_bundle(world: RayBundle, origins, matrix, col, row, focal, widths, heights) -> RayBundle:
    """The NDC rays of pixels (col, row) (B,) whose world rays are `world`: camera centres
    `origins` (B|1, 3), ray matrices ``cam2world[:3, :3] @ pix2cam`` `matrix` (B|1, 3, 3), and
    `focal`, `widths`, `heights` (B|1,) of their images (module docstring: the view direction
    stays the world one; the radius comes from the neighbouring pixels' NDC origins)."""

    def ndc_at(c, r):
        directions = matrix[..., 0] * (c + 0.5)[:, None] + matrix[..., 1] * (r + 0.5)[:, None] + matrix[..., 2]
        return ndc_rays(np.broadcast_to(origins, directions.shape), directions, focal, widths, heights)

    ndc_origins, ndc_directions = ndc_at(col, row)
    # Distances to the next row's / column's NDC origin. The reference pads the (H-1)-row
    # table of distances with its entry ``[-2]``, so the last row gets the distance
    # between rows H-3 and H-2 (not H-2 and H-1); the last column likewise.
    r0 = np.maximum(np.where(row >= heights - 1, heights - 3, row), 0)
    c0 = np.maximum(np.where(col >= widths - 1, widths - 3, col), 0)
    dx = np.linalg.norm(ndc_at(col, r0)[0] - ndc_at(col, r0 + 1)[0], axis=-1)
    dy = np.linalg.norm(ndc_at(c0, row)[0] - ndc_at(c0 + 1, row)[0], axis=-1)
    radii = (0.5 * (dx + dy))[:, None] * 2 / math.sqrt(12)
    return RayBundle(
        origins=torch.from_numpy(ndc_origins.astype(np.float32)),
        directions=torch.from_numpy(ndc_directions.astype(np.float32)),
        viewdirs=world.directions,
        radii=torch.from_numpy(radii.astype(np.float32)),
        near=world.near,
        far=world.far,
        lossmult=world.lossmult,
    )


def pose_rays(
    cam2world: torch.Tensor, width: int, height: int, focal: float, near: float, far: float, ndc: bool
) -> RayBundle:
    """The H*W rays (row-major) of a pinhole camera at ``cam2world`` (3, 4), in NDC when ``ndc``
    (the same rule as the training rays of an LLFF scene: :func:`ndc_bundle`)."""
    if not ndc:
        return pinhole_rays(cam2world, width, height, focal, near, far)
    c2w = torch.as_tensor(cam2world, dtype=torch.float64)[:3]
    pix2cam = torch.from_numpy(pix2cam_matrices([float(focal)], [width], [height]))
    matrix = (c2w[None, :, :3] @ pix2cam).numpy()  # as ImageSet's ray matrices
    c2w = c2w.numpy()
    local = np.arange(height * width, dtype=np.int64)
    row = local // width
    col = local - row * width
    directions = matrix[..., 0] * (col + 0.5)[:, None] + matrix[..., 1] * (row + 0.5)[:, None] + matrix[..., 2]
    count = height * width
    ones = torch.ones(count, 1, dtype=torch.float32)
    world = RayBundle(
        origins=torch.from_numpy(np.broadcast_to(c2w[:, 3], (count, 3)).astype(np.float32)),
        directions=torch.from_numpy(directions.astype(np.float32)),
        viewdirs=torch.from_numpy((directions / np.linalg.norm(directions, axis=-1, keepdims=True)).astype(np.float32)),
        radii=ones.clone(),
        near=ones * near,
        far=ones * far,
        lossmult=ones.clone(),
    )
    size = np.array([width]), np.array([height])
    return ndc_bundle(world, c2w[None, :, 3], matrix, col, row, np.array([float(focal)]), *size)


def video_poses(
    path: Path, factor: int = 0, spherify: bool | None = False, num_views: int = SPIRAL_VIEWS
) -> torch.Tensor:
    """(num_views, 3, 4) float64: the reference's video path of the capture at ``path``, a
    2-turn spiral (forward-facing) or a circle (spherified), in the loader's world frame.
    spherify None: the scene's kind (``capture.resolve_spherify``)."""
    capture = read_capture(Path(path), factor, resolve_spherify(path, spherify), "test", num_views)
    return torch.from_numpy(np.asarray(capture.render_poses, dtype=np.float64))


# ----------------------------------------------------------------------------- reading


def is_llff_folder(path: Path) -> bool:
    return (path / POSES_BOUNDS).is_file()


def read_poses_bounds(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 5) float64 poses and (N, 2) bounds from ``path/poses_bounds.npy``, checked."""
    file = path / POSES_BOUNDS
    if not file.is_file():
        raise MipNerfError(
            f"{file}: file not found; an LLFF scene needs it (LLFF's imgs2poses.py writes it from a COLMAP reconstruction)"
        )
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise MipNerfError(
            f"{file}: cannot read it as a .npy array ({error}); write it again with numpy.save"
        ) from None
    if array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.number):
        raise MipNerfError(
            f"{file}: expected an N x 17 number array (a 3x5 pose and near, far per image), got shape {array.shape}"
        )
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise MipNerfError(f"{file}: row {bad[0]} holds NaN or infinite values; fix or drop that image's pose")
    low = np.flatnonzero(array[:, 15] <= 0)
    if low.size:
        raise MipNerfError(
            f"{file}: row {low[0]} has near bound {array[low[0], 15]:g} <= 0; every near bound must be positive "
            "(the scale is 1/(0.75 * min near)); recompute the bounds"
        )
    return array[:, :-2].reshape([-1, 3, 5]), array[:, -2:]


def image_files(path: Path, factor: int) -> tuple[Path, list[Path]]:
    folder = path / (f"images_{factor}" if factor > 0 else "images")
    if not folder.is_dir():
        if factor > 0:
            raise MipNerfError(
                f"{folder}: folder not found; create it with every image of {path / 'images'} shrunk {factor} times "
                f"(e.g. `mogrify -path {folder} -resize {100 / factor:g}% -format png {path / 'images'}/*`), "
                "or choose another factor (0: full resolution)"
            )
        raise MipNerfError(f"{folder}: folder not found; an LLFF scene keeps its photos in images/")
    files = [folder / name for name in sorted(p.name for p in folder.iterdir()) if name.endswith(IMAGE_ENDINGS)]
    if not files:
        raise MipNerfError(f"{folder}: no images (.JPG, .jpg or .png) found")
    return folder, files


@dataclasses.dataclass
class LlffCapture:
    """A whole capture after the reference's pose processing (all images, before the split)."""

    files: list[Path]
    poses: np.ndarray  # (N, 3, 5) float32 or float64 after spherify
    bounds: np.ndarray  # (N, 2) float32, scaled
    render_poses: np.ndarray | None  # (V, 3, 4)
    focal: float
    height: int
    width: int
    intrinsics: np.ndarray | None = None  # (N, 4) pinhole fx, fy, cx, cy at this factor (nerfstudio / COLMAP)
    source: Path | None = None  # the file the cameras came from
    undistort: list | None = None  # per image: None or the cv2 maps that make it pinhole (data/undistort.py)


@dataclasses.dataclass
class CameraArrays:
    """A capture's cameras as LLFF arrays, before the reference's processing."""

    files: list[Path]
    poses: np.ndarray  # (N, 3, 5) float64 [down, right, back, position, (H, W, focal)]
    bounds: np.ndarray  # (N, 2)
    source: Path  # the file the cameras came from
    intrinsics: np.ndarray | None = None  # (N, 4) full-resolution fx, fy, cx, cy; None: poses_bounds.npy's focal
    distortion: np.ndarray | None = None  # (N, 8) OpenCV distortion coefficients, or None


def read_cameras(path: Path, factor: int) -> CameraArrays:
    """The cameras of the capture at ``path`` in any of the formats of ``formats/capture.py``."""
    if capture_format(path) in ("nerfstudio", "colmap"):
        cameras = read_capture_cameras(path, factor)
        poses, bounds = llff_poses(cameras)
        return CameraArrays(cameras.files, poses, bounds, cameras.source, cameras.intrinsics, cameras.distortion)
    poses, bounds = read_poses_bounds(path)
    folder, files = image_files(path, factor)
    if len(files) != poses.shape[0]:
        raise MipNerfError(
            f"{path / POSES_BOUNDS}: {poses.shape[0]} poses but {len(files)} images in {folder}; "
            "they must match one to one (images sorted by name)"
        )
    return CameraArrays(files, poses, bounds, path / POSES_BOUNDS)


def pinhole_intrinsics(
    intrinsics: np.ndarray, distortion: np.ndarray | None, height: int, width: int
) -> tuple[np.ndarray, list | None]:
    """(N, 4) pinhole intrinsics of images ``height`` x ``width`` and, when ``distortion`` (N, 8)
    is given, per image the cv2 maps that undistort it (one computation per distinct camera)."""
    if distortion is None:
        return intrinsics, None
    cache: dict[bytes, tuple[np.ndarray, object]] = {}
    pinhole, maps = np.empty_like(intrinsics), []
    for i, (camera, coefficients) in enumerate(zip(intrinsics, distortion)):
        key = camera.tobytes() + coefficients.tobytes()
        if key not in cache:
            if np.any(coefficients != 0):
                new = pinhole_camera(camera, coefficients, height, width)
                cache[key] = (new, undistortion_maps(camera, coefficients, new, height, width))
            else:
                cache[key] = (camera, None)
        pinhole[i], image_maps = cache[key]
        maps.append(image_maps)
    return pinhole, maps


def read_capture(
    path: Path, factor: int = 0, spherify: bool = False, split: str = "train", num_views: int = SPIRAL_VIEWS
) -> LlffCapture:
    """Poses of the capture at ``path`` processed as the reference does (checks, no pixels).

    The spiral path is made for the test split only, as in the reference."""
    if not isinstance(factor, int) or factor < 0:
        raise MipNerfError(f"factor must be 0 (full resolution) or a positive integer, got {factor!r}")
    cameras = read_cameras(path, factor)
    files, poses, bounds, source, intrinsics = cameras.files, cameras.poses, cameras.bounds, cameras.source, None
    from PIL import Image

    sizes = []
    for file in files:
        try:
            with Image.open(file) as image:
                sizes.append((image.height, image.width))
        except OSError as error:
            raise MipNerfError(f"{file}: cannot read the image ({error})") from None
    odd = [i for i, size in enumerate(sizes) if size != sizes[0]]
    if odd:
        h, w = sizes[odd[0]]
        raise MipNerfError(
            f"{files[odd[0]]}: {w}x{h} pixels but {files[0].name} has {sizes[0][1]}x{sizes[0][0]}; "
            "every image of an LLFF scene must have the same size"
        )
    height, width = sizes[0]
    undistort = None
    if cameras.intrinsics is not None:
        expected = poses[:, :2, 4] // max(factor, 1)
        wrong = np.flatnonzero((expected != np.array(sizes[0])).any(1))
        if wrong.size:
            h, w = poses[wrong[0], :2, 4]
            raise MipNerfError(
                f"{files[wrong[0]]}: {width}x{height} pixels, but {source} gives its camera {w:g}x{h:g} pixels"
                + (f" (/ {factor} = {w // factor:g}x{h // factor:g} at --factor {factor})" if factor else "")
                + "; the images and the cameras must match"
            )
        intrinsics, undistort = pinhole_intrinsics(
            cameras.intrinsics / max(factor, 1), cameras.distortion, height, width
        )
    poses[:, :2, 4] = np.array([height, width])
    poses[:, 2, 4] = poses[:, 2, 4] * 1.0 / max(factor, 1)
    poses = opengl_from_llff(poses).astype(np.float32)
    bounds = bounds.astype(np.float32)
    scale = 1.0 / (bounds.min() * 0.75)
    poses[:, :3, 3] *= scale
    bounds *= scale
    poses = recenter_poses(poses)
    render_poses = None
    if spherify:
        poses, render_poses = spherify_poses(poses, bounds, num_views)
    elif split != "train":
        render_poses = spiral_poses(poses, bounds, num_views)
    focal = float(poses[0, -1, -1]) if intrinsics is None else float(intrinsics[0, 0])
    return LlffCapture(files, poses, bounds, render_poses, focal, height, width, intrinsics, source, undistort)


def image_names(files: list[Path], scene: Path) -> list[str]:
    """The file names without extension; when two are the same (a COLMAP or nerfstudio scene
    with images in subfolders), the paths under ``scene`` with "_" for "/"."""
    stems = [file.stem for file in files]
    if len(set(stems)) == len(stems):
        return stems
    relative = [file.relative_to(scene).with_suffix("") if file.is_relative_to(scene) else file for file in files]
    return ["_".join(path.parts) for path in relative]


def split_indices(count: int, split: str, llffhold: int, where: Path) -> np.ndarray:
    """Image indices of ``split``: every ``llffhold``-th image is a test image, the rest train.
    where: the cameras' file (for the message)."""
    if llffhold < 1 or llffhold > count:
        raise MipNerfError(
            f"{where}: llffhold {llffhold} but the scene has {count} images; use an llffhold between 1 and {count}"
        )
    test = np.arange(count)[::llffhold]
    if split == "train":
        return np.array([i for i in range(count) if i not in set(test.tolist())], dtype=np.int64)
    return test


@dataclasses.dataclass(eq=False)
class LlffCameras(SplitCameras):
    """The cameras of one split of a capture (:func:`llff_cameras`), with what the loader needs
    besides: spherified (360°), render_poses (V, 3, 4) float64 or None, and per image None or the
    cv2 maps that undistort it."""

    spherified: bool = False
    render_poses: torch.Tensor | None = None
    undistort: list | None = None


def llff_cameras(
    path: Path,
    split: str,
    factor: int = 0,
    spherify: bool | None = False,
    llffhold: int = LLFFHOLD,
    near: float | None = None,
    far: float | None = None,
    num_views: int = SPIRAL_VIEWS,
) -> LlffCameras:
    """The cameras of one split ("train", or "test" / "val": the held-out images) of a capture,
    from its poses and the image headers (no pixels); the arguments as :func:`load_llff`'s."""
    path = Path(path)
    spherify = resolve_spherify(path, spherify)
    capture = read_capture(path, factor, spherify, "train" if split == "train" else "test", num_views)
    indices = split_indices(len(capture.files), split, llffhold, capture.source)
    if len(indices) == 0:
        raise MipNerfError(f"{path}: the {split} split is empty with llffhold {llffhold}; use a larger llffhold")
    if near is None:
        near = float(0.9 * capture.bounds.min()) if spherify else 0.0
    if far is None:
        far = float(capture.bounds.max()) if spherify else 1.0
    height, width = capture.height, capture.width
    count = len(indices)
    focal = capture.focal
    if capture.intrinsics is None:
        focals = [focal] * count
        pix2cam = pix2cam_matrices(focals, [width] * count, [height] * count)
    else:
        intrinsics = capture.intrinsics[indices]
        if not spherify and not np.allclose(capture.intrinsics[:, 0], focal, rtol=1e-6, atol=0):
            raise MipNerfError(
                f"{capture.source}: the images have different focal lengths, which a forward-facing (NDC) scene "
                "cannot take (NDC has one focal); use one shared camera, or --spherify for a 360° capture"
            )
        focals = intrinsics[:, 0].tolist()
        pix2cam = pix2cam_from_intrinsics(intrinsics)
    names = image_names(capture.files, path)
    return LlffCameras(
        names=[names[i] for i in indices],
        files=[capture.files[i] for i in indices],
        heights=[height] * count,
        widths=[width] * count,
        levels=[0] * count,
        cam2world=torch.from_numpy(np.ascontiguousarray(capture.poses[indices, :3, :4], dtype=np.float64)),
        focal=torch.tensor(focals, dtype=torch.float64),
        pix2cam=torch.from_numpy(pix2cam),
        lossmult=torch.ones(count, dtype=torch.float32),
        near=near,
        far=far,
        multiscale=False,
        spherified=spherify,
        render_poses=None
        if capture.render_poses is None
        else torch.from_numpy(np.asarray(capture.render_poses, dtype=np.float64)),
        undistort=None if capture.undistort is None else [capture.undistort[i] for i in indices],
    )


def load_llff(
    path: Path,
    split: str,
    factor: int = 0,
    spherify: bool | None = False,
    llffhold: int = LLFFHOLD,
    near: float | None = None,
    far: float | None = None,
    white_bkgd: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    num_views: int = SPIRAL_VIEWS,
) -> LlffImageSet:
    """One split ("train", or "test" / "val": the held-out images) of an LLFF capture.

    near, far: ray bounds; default 0 and 1 (NDC) for forward-facing scenes and the scaled
    scene bounds (0.9 * min, max) for spherified ones. ``near=0, far=1`` with spherify
    reproduces the reference exactly (whose config values are used as they are).
    spherify None: the scene's kind (``capture.resolve_spherify``).
    """
    cameras = llff_cameras(path, split, factor, spherify, llffhold, near, far, num_views)
    files, count = cameras.files, len(cameras.files)
    height, width = cameras.heights[0], cameras.widths[0]
    pixels = np.empty((count * height * width, 4), dtype=np.uint8)
    undistort = cameras.undistort or [None] * count

    def decode(k: int) -> None:
        rgba = read_rgba(files[k])
        if rgba.shape[:2] != (height, width):
            raise MipNerfError(f"{files[k]}: {rgba.shape[1]}x{rgba.shape[0]} pixels, expected {width}x{height}")
        if undistort[k] is not None:
            rgba = undistort_image(rgba, undistort[k])
        pixels[k * height * width : (k + 1) * height * width] = rgba.reshape(-1, 4)

    run_in_threads(decode, count, workers, progress)
    return LlffImageSet.from_cameras(
        cameras,
        pixels,
        white_bkgd,
        ndc=uses_ndc("llff", cameras.spherified),
        spherified=cameras.spherified,
        render_poses=cameras.render_poses,
    )
