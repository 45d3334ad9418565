"""Camera paths for videos and the rays of a pinhole camera, in pure torch.

Conventions are the Blender/NeRF ones the datasets use: world z is up; a camera looks along
its own -z axis with +y up and +x to the right; `cam2world` is (3, 4) = [rotation | position].
"""

from __future__ import annotations

import math

import torch

from mipnerf_cli.core.rays import RayBundle


def look_at_origin(position: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrix of a camera at `position` (3,) looking at the world origin.

    The camera keeps world z up (no roll). Returns (3, 4) in the dtype of `position`.
    """
    backward = position / position.norm()
    world_up = torch.tensor([0.0, 0.0, 1.0], dtype=position.dtype, device=position.device)
    right = torch.linalg.cross(world_up, backward)
    if right.norm() < 1e-9:
        # Straight above or below the origin: any horizontal right axis will do.
        right = torch.tensor([1.0, 0.0, 0.0], dtype=position.dtype, device=position.device)
    right = right / right.norm()
    up = torch.linalg.cross(backward, right)
    return torch.stack([right, up, backward, position], dim=1)


def spheric_poses(num_frames: int, radius: float, elevation_deg: float = 36.0) -> torch.Tensor:
    """Cameras evenly spaced on a horizontal circle around the origin, looking at it.

    The circle lies on a sphere of `radius` at `elevation_deg` above the horizon; frame 0
    is on the +y side and the path turns towards +x, one full turn without repeating the
    first frame (the same path as mipnerf_pl's `create_spheric_poses`, whose fixed -pi/5
    tilt is the 36 degree default here).
    Returns (num_frames, 3, 4) float64 camera-to-world matrices.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    elevation = math.radians(elevation_deg)
    azimuths = torch.linspace(0.0, 2 * math.pi, num_frames + 1, dtype=torch.float64)[:-1]
    positions = radius * torch.stack(
        [
            math.cos(elevation) * torch.sin(azimuths),
            math.cos(elevation) * torch.cos(azimuths),
            torch.full_like(azimuths, math.sin(elevation)),
        ],
        dim=-1,
    )
    return torch.stack([look_at_origin(p) for p in positions])


def mean_camera_distance(cam2world: torch.Tensor) -> float:
    """Mean distance of the camera centres from the world origin; cam2world (I, 3, 4)."""
    return float(cam2world[..., :3, 3].to(torch.float64).norm(dim=-1).mean())


def camera_rays(
    cam2world: torch.Tensor,
    width: int,
    height: int,
    focal: float,
    near: float,
    far: float,
) -> RayBundle:
    """The H*W rays (row-major) of a pinhole camera, as the datasets build them.

    cam2world: (3, 4) camera-to-world matrix. Pixel centres sit at +0.5; camera-space
    directions are ((x - W/2 + 0.5)/f, -(y - H/2 + 0.5)/f, -1) and stay unnormalised.
    The radius is the distance between vertically neighbouring directions times
    2/sqrt(12) (the bottom row repeats the row above). The geometry is computed in
    float64, as the reference loaders do, and returned as float32.
    Returns a RayBundle of H*W rays with lossmult 1.
    """
    c2w = cam2world.to(torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    camera_dirs = torch.stack(
        [(xs - 0.5 * width) / focal, -(ys - 0.5 * height) / focal, -torch.ones_like(xs)], dim=-1
    )
    directions = camera_dirs @ c2w[:3, :3].T  # (H, W, 3)
    origins = c2w[:3, 3].expand_as(directions)
    viewdirs = directions / directions.norm(dim=-1, keepdim=True)
    if height > 1:
        dx = (directions[:-1] - directions[1:]).norm(dim=-1)
        dx = torch.cat([dx, dx[-1:]], dim=0)
    else:
        # One row has no vertical neighbour; the horizontal spacing is the same for square pixels.
        dx = (directions[:, :-1] - directions[:, 1:]).norm(dim=-1)
        dx = torch.cat([dx, dx[:, -1:]], dim=1) if width > 1 else torch.full((1, 1), 1.0 / focal, dtype=torch.float64)
    radii = dx[..., None] * 2 / math.sqrt(12)
    count = height * width
    ones = torch.ones(count, 1, dtype=torch.float32)
    return RayBundle(
        origins=origins.reshape(count, 3).float(),
        directions=directions.reshape(count, 3).float(),
        viewdirs=viewdirs.reshape(count, 3).float(),
        radii=radii.reshape(count, 1).float(),
        near=ones * near,
        far=ones * far,
        lossmult=ones.clone(),
    )
