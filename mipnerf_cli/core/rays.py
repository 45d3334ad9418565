"""A batch of rays: the one format loaders produce and the model, trainer and renderer take;
and the one pinhole-camera rule that makes them (google/mipnerf's generate_rays).

Camera space: x right, y up, the camera looks down -z. Pixel (col, row) has its centre at
(col + 0.5, row + 0.5); its world direction is ``R @ pix2cam @ (col + 0.5, row + 0.5, 1)``
with R the rotation of cam2world and ``pix2cam = [[1/f, 0, -W/2f], [0, -1/f, H/2f], [0, 0, -1]]``,
i.e. ``R @ ((col + 0.5 - W/2)/f, -(row + 0.5 - H/2)/f, -1)``, not normalized. The cone radius
at distance 1 is the distance dx between vertically neighbouring directions times 2/sqrt(12).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch


@dataclasses.dataclass
class RayBundle:
    """N rays; every field is float32 with leading dimension N.

    origins:    (N, 3) ray origins in world space.
    directions: (N, 3) unnormalized directions (camera-space z = -1), as the reference.
    viewdirs:   (N, 3) unit directions fed to the view-dependent branch.
    radii:      (N, 1) cone radius at distance 1 (pixel footprint * 2/sqrt(12)).
    near, far:  (N, 1) integration bounds.
    lossmult:   (N, 1) per-ray loss weight (1 single-scale, 4**level multiscale).
    """

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor
    radii: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    lossmult: torch.Tensor

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, index) -> "RayBundle":
        return RayBundle(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def to(self, device=None, dtype=None) -> "RayBundle":
        return RayBundle(
            **{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in dataclasses.fields(self)}
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @staticmethod
    def cat(bundles: Sequence["RayBundle"]) -> "RayBundle":
        return RayBundle(
            **{f.name: torch.cat([getattr(b, f.name) for b in bundles]) for f in dataclasses.fields(RayBundle)}
        )


# ----------------------------------------------------------------------------- pinhole cameras


def pix2cam(focal: torch.Tensor, width: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """Inverse intrinsics of pinhole cameras with the principal point at the image centre.

    focal, width, height: (I,) focal lengths in pixels and image sizes.
    Returns (I, 3, 3) float64 ``[[1/f, 0, -cx/f], [0, -1/f, cy/f], [0, 0, -1]]``, cx = W/2, cy = H/2
    (each entry one float64 operation, as the reference converter computes it).
    """
    f = torch.as_tensor(focal, dtype=torch.float64)
    cx = torch.as_tensor(width, dtype=torch.float64) * 0.5
    cy = torch.as_tensor(height, dtype=torch.float64) * 0.5
    return pix2cam_general(f, f, cx, cy)


def pix2cam_general(fx: torch.Tensor, fy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """Inverse intrinsics of general pinhole cameras (real captures: fx != fy, any principal point).

    fx, fy, cx, cy: (I,) in pixels, pixel centres at +0.5 (``pix2cam`` is fx = fy = f, cx = W/2, cy = H/2).
    Returns (I, 3, 3) float64 ``[[1/fx, 0, -cx/fx], [0, -1/fy, cy/fy], [0, 0, -1]]``.
    """
    fx, fy, cx, cy = (torch.as_tensor(v, dtype=torch.float64) for v in (fx, fy, cx, cy))
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [[ones / fx, zeros, -cx / fx], [zeros, -ones / fy, cy / fy], [zeros, zeros, -ones]]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def pinhole_radius(ray_matrix: torch.Tensor) -> torch.Tensor:
    """Cone radius at distance 1 of every pixel of a camera.

    ray_matrix: (..., 3, 3) ``R @ pix2cam`` (direction(col, row) = ray_matrix @ (col + .5, row + .5, 1)).
    Returns (...,): dx * 2/sqrt(12), dx = |d(row + 1) - d(row)|, the distance between vertically
    neighbouring directions (halfway between the circles inscribed in and circumscribed about
    the pixel). Directions are linear in (col, row), so dx is the norm of the matrix's middle
    column for every pixel, the bottom row included (the reference repeats the row above it).
    """
    return torch.linalg.vector_norm(ray_matrix[..., :, 1], dim=-1) * 2 / math.sqrt(12)


def pinhole_rays(cam2world: torch.Tensor, width: int, height: int, focal: float, near: float, far: float) -> RayBundle:
    """All rays of a pinhole camera image, row-major (google/mipnerf's generate_rays).

    cam2world: (3, 4) camera-to-world matrix (a (4, 4) one is cut to its first 3 rows).
    width, height: the image size W, H in pixels;  focal: its focal length in pixels.
    near, far: the integration bounds of every ray.
    Returns a RayBundle of H*W rays: origins (H*W, 3) the camera centre, directions (H*W, 3)
    ``R @ pix2cam @ (col + .5, row + .5, 1)`` unnormalized, viewdirs (H*W, 3) unit, radii
    (H*W, 1) ``pinhole_radius``, near / far (H*W, 1), lossmult (H*W, 1) ones. Computed in
    float64, as the reference loaders do, returned as float32.
    """
    c2w = torch.as_tensor(cam2world).to(torch.float64)[:3]
    matrix = c2w[:, :3] @ pix2cam(torch.tensor([float(focal)]), torch.tensor([width]), torch.tensor([height]))[0]
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij"
    )
    pixels = torch.stack([cols.reshape(-1), rows.reshape(-1), torch.ones(height * width, dtype=torch.float64)], -1)
    directions = pixels @ matrix.T  # (H*W, 3)
    count = height * width
    ones = torch.ones(count, 1, dtype=torch.float32)
    return RayBundle(
        origins=c2w[:, 3].expand(count, 3).float(),
        directions=directions.float(),
        viewdirs=(directions / directions.norm(dim=-1, keepdim=True)).float(),
        radii=(ones * pinhole_radius(matrix).float()),
        near=ones * near,
        far=ones * far,
        lossmult=ones.clone(),
    )
