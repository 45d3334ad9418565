"""Camera paths for videos (a circle around the origin, a smooth path through given cameras), the
check that a pose is a rigid transform, and focal <-> field of view, in pure torch. The rays of
these cameras come from `core.rays.pinhole_rays`.

Conventions are the Blender/NeRF ones the datasets use: world z is up; a camera looks along
its own -z axis with +y up and +x to the right; `cam2world` is (3, 4) = [rotation | position].
"""

from __future__ import annotations

import math

import torch

from mipnerf_cli.core.quaternions import quaternion_from_rotation, rotation_from_quaternion, slerp


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


# ----------------------------------------------------------------------------- interpolated paths


def catmull_rom(points: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Centripetal Catmull-Rom spline through `points`, evaluated at parameters `u`.

    points: (K, 3) control points, K >= 2, passed through in order; the ends are extended by
    reflecting the neighbouring point. u: (N,) in [0, K-1]; u = k gives points[k].
    Returns (N, 3). Centripetal (alpha 1/2) knots neither cusp nor loop within a segment.
    """
    count = points.shape[0]
    padded = torch.cat([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])  # (K+2, 3)
    segment = u.floor().clamp(0, count - 2).long()
    local = (u - segment).clamp(0.0, 1.0)
    p0, p1, p2, p3 = (padded[segment + i] for i in range(4))

    # Knot spacing: square root of the chord lengths (never 0, so repeated points stay finite).
    def gap(a, b):
        return (b - a).norm(dim=-1).clamp(min=1e-9).sqrt()

    t1 = gap(p0, p1)
    t2 = t1 + gap(p1, p2)
    t3 = t2 + gap(p2, p3)
    t = (t1 + local * (t2 - t1))[:, None]
    t1, t2, t3 = t1[:, None], t2[:, None], t3[:, None]
    a1 = ((t1 - t) * p0 + t * p1) / t1
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + t * a2) / t2
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    return ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)


def constant_speed_parameters(points: torch.Tensor, num_frames: int, samples_per_segment: int = 256) -> torch.Tensor:
    """Spline parameters u (num_frames,) in [0, K-1] that cut the spline through `points` (K, 3)
    into equal lengths: the first is 0, the last K-1. Lengths come from `samples_per_segment`
    chords per segment; a path of zero length (all points equal) gets evenly spaced u."""
    count = points.shape[0]
    dense_u = torch.linspace(0.0, count - 1, (count - 1) * samples_per_segment + 1, dtype=points.dtype)
    dense = catmull_rom(points, dense_u)
    length = torch.cat([dense.new_zeros(1), (dense[1:] - dense[:-1]).norm(dim=-1).cumsum(0)])
    if num_frames == 1:
        return dense_u[:1]
    if float(length[-1]) < 1e-12:
        return torch.linspace(0.0, count - 1, num_frames, dtype=points.dtype)
    wanted = torch.linspace(0.0, float(length[-1]), num_frames, dtype=points.dtype)
    right = torch.searchsorted(length, wanted).clamp(1, len(length) - 1)
    left = right - 1
    span = (length[right] - length[left]).clamp(min=1e-300)
    fraction = ((wanted - length[left]) / span).clamp(0.0, 1.0)
    return dense_u[left] + fraction * (dense_u[right] - dense_u[left])


def interpolated_poses(cam2world: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A smooth path through cameras in their order, at constant speed.

    cam2world: (K, 3, 4) key cameras (rigid); positions follow a centripetal Catmull-Rom
    spline through their centres, rotations are slerped between the two keys of each segment
    at the same spline parameter, so frame 0 is the first key and the last frame the last key.
    Returns (num_frames, 3, 4) float64.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    keys = cam2world.to(torch.float64)
    if keys.shape[0] == 1:
        return keys.expand(num_frames, 3, 4).clone()
    centres = keys[:, :3, 3]
    u = constant_speed_parameters(centres, num_frames)
    segment = u.floor().clamp(0, keys.shape[0] - 2).long()
    quats = quaternion_from_rotation(keys[:, :3, :3])
    rotations = rotation_from_quaternion(slerp(quats[segment], quats[segment + 1], u - segment))
    return torch.cat([rotations, catmull_rom(centres, u)[..., None]], dim=-1)


def rigid_transform_error(matrices: torch.Tensor) -> torch.Tensor:
    """How far each matrix is from a rigid camera-to-world transform.

    matrices: (N, 4, 4). Returns (N,): the largest of |R^T R - I|, |det R - 1| and the
    bottom row's distance from (0, 0, 0, 1); 0 for an exact rotation plus translation.
    """
    m = matrices.to(torch.float64)
    rotation = m[:, :3, :3]
    identity = torch.eye(3, dtype=torch.float64)
    orthogonal = (rotation.transpose(1, 2) @ rotation - identity).abs().amax(dim=(1, 2))
    determinant = (torch.linalg.det(rotation) - 1).abs()
    bottom = (m[:, 3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().amax(dim=1)
    return torch.stack([orthogonal, determinant, bottom], dim=1).amax(dim=1)


def focal_from_vertical_fov(fov_deg: torch.Tensor, height: int) -> torch.Tensor:
    """Focal length in pixels of a pinhole camera `height` pixels tall with a vertical field of
    view of `fov_deg` degrees (nerfstudio's `fov`); any shape, float64."""
    return 0.5 * height / torch.tan(torch.deg2rad(fov_deg.to(torch.float64)) / 2)


def vertical_fov_from_focal(focal: torch.Tensor, height: int) -> torch.Tensor:
    """The inverse of `focal_from_vertical_fov`: degrees, any shape, float64."""
    return torch.rad2deg(2 * torch.atan(0.5 * height / focal.to(torch.float64)))
