"""The camera-pose math of LLFF captures (numpy; google/mipnerf's ``internal/datasets.py``).

Two axis conventions meet here. OpenGL / Blender camera-to-world matrices have the columns
``[right, up, back, position]`` (the camera looks down -z); LLFF's ``poses_bounds.npy`` stores
``[down, right, back, position, (H, W, focal)]``. ``llff_from_opengl`` / ``opengl_from_llff``
are the one conversion between them: the nerfstudio and COLMAP readers, ``mipnerf convert``
and the demo scene write LLFF rows with the first, the loader reads them with the second.

Then the reference's processing of a capture (ports of its helpers, same float32 / float64
mix): the average pose, recentring, the spiral video path, spherify for 360° captures, and the
rays in normalized device coordinates of forward-facing scenes.
"""

from __future__ import annotations

import numpy as np

SPIRAL_VIEWS = 120


# ----------------------------------------------------------------------------- axis conventions


def llff_from_opengl(cam2world: np.ndarray, hwf: np.ndarray) -> np.ndarray:
    """(N, 3, 5) LLFF poses ``[down, right, back, position, (H, W, focal)]`` of OpenGL
    camera-to-world matrices ``cam2world`` (N, 3 or 4, 4) with ``hwf`` (N, 3) height, width, focal."""
    c2w = np.asarray(cam2world)[:, :3, :4]
    hwf = np.asarray(hwf)
    return np.concatenate([-c2w[:, :, 1:2], c2w[:, :, 0:1], c2w[:, :, 2:4], hwf[:, :, None]], -1)


def opengl_from_llff(poses: np.ndarray) -> np.ndarray:
    """(N, 3, 5) ``[right, up, back, position, hwf]`` of LLFF poses (N, 3, 5) (the inverse of
    ``llff_from_opengl``; the hwf column is kept)."""
    return np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:]], -1)


def llff_pose_row(cam2world: np.ndarray, height: int, width: int, focal: float, near: float, far: float) -> np.ndarray:
    """(17,) one poses_bounds.npy row of an OpenGL camera ``cam2world`` (3 or 4, 4): the 3x5
    LLFF pose flattened, then near and far."""
    pose = llff_from_opengl(np.asarray(cam2world)[None], np.array([[height, width, focal]]))[0]
    return np.concatenate([pose.reshape(-1), [near, far]])


# ----------------------------------------------------------------------------- the reference's pose processing
# Ports of its helpers; same dtypes (poses float32, mixed float64 steps).


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def view_matrix(z: np.ndarray, up: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(3, 4) camera-to-world with back axis ``z``, roughly ``up``, at ``position``."""
    back = _normalize(z)
    right = _normalize(np.cross(up, back))
    true_up = _normalize(np.cross(back, right))
    return np.stack([right, true_up, back, position], 1)


def average_pose(poses: np.ndarray) -> np.ndarray:
    """(3, 5) mean pose of ``poses`` (N, 3, 5): mean centre, summed back and up axes; hwf of pose 0."""
    hwf = poses[0, :3, -1:]
    center = poses[:, :3, 3].mean(0)
    back = _normalize(poses[:, :3, 2].sum(0))
    up = poses[:, :3, 1].sum(0)
    return np.concatenate([view_matrix(back, up, center), hwf], 1)


def recenter_poses(poses: np.ndarray) -> np.ndarray:
    """``poses`` (N, 3, 5) expressed in the frame of their average pose (the hwf column kept)."""
    bottom = np.reshape([0, 0, 0, 1.0], [1, 4])
    average = np.concatenate([average_pose(poses)[:3, :4], bottom], -2)
    square = np.concatenate([poses[:, :3, :4], np.tile(bottom[None], [poses.shape[0], 1, 1])], -2)
    out = poses.copy()
    out[:, :3, :4] = (np.linalg.inv(average) @ square)[:, :3, :4]
    return out


def spiral_poses(poses: np.ndarray, bounds: np.ndarray, num_views: int = SPIRAL_VIEWS, turns: int = 2) -> np.ndarray:
    """The reference's video path: ``num_views`` (3, 4) float32 poses on a ``turns``-turn spiral
    around the average pose, looking at the focus depth 1/(0.25/(0.9 min near) + 0.75/(5 max far))."""
    average = average_pose(poses)
    up = _normalize(poses[:, :3, 1].sum(0))
    close_depth, inf_depth = bounds.min() * 0.9, bounds.max() * 5.0
    focus = 1.0 / ((1.0 - 0.75) / close_depth + 0.75 / inf_depth)
    radii = np.array(list(np.percentile(np.abs(poses[:, :3, 3]), 90, 0)) + [1.0])
    out = []
    for theta in np.linspace(0.0, 2.0 * np.pi * turns, num_views + 1)[:-1]:
        centre = np.dot(average[:3, :4], np.array([np.cos(theta), -np.sin(theta), -np.sin(theta * 0.5), 1.0]) * radii)
        back = _normalize(centre - np.dot(average[:3, :4], np.array([0, 0, -focus, 1.0])))
        out.append(view_matrix(back, up, centre))
    return np.array(out).astype(np.float32)


def _homogeneous(p: np.ndarray) -> np.ndarray:
    return np.concatenate([p, np.tile(np.eye(4)[-1][None, None], [p.shape[0], 1, 1])], 1)


def spherify_poses(
    poses: np.ndarray, bounds: np.ndarray, num_views: int = SPIRAL_VIEWS
) -> tuple[np.ndarray, np.ndarray]:
    """360° captures: poses (N, 3, 5) moved so the point nearest every optical axis is the
    origin and scaled so the cameras lie on average on the unit sphere; ``bounds`` is scaled
    in place. Returns the new (N, 3, 5) poses and the (num_views, 3, 4) circle path."""
    axes, centres = poses[:, :3, 2:3], poses[:, :3, 3:4]
    a = np.eye(3) - axes * np.transpose(axes, [0, 2, 1])
    b = -a @ centres
    centre = np.squeeze(-np.linalg.inv((np.transpose(a, [0, 2, 1]) @ a).mean(0)) @ b.mean(0))
    up = _normalize((poses[:, :3, 3] - centre).mean(0))
    right = _normalize(np.cross([0.1, 0.2, 0.3], up))
    forward = _normalize(np.cross(up, right))
    frame = np.stack([right, forward, up, centre], 1)
    reset = np.linalg.inv(_homogeneous(frame[None])) @ _homogeneous(poses[:, :3, :4])
    radius = np.sqrt(np.mean(np.sum(np.square(reset[:, :3, 3]), -1)))
    scale = 1.0 / radius
    reset[:, :3, 3] *= scale
    bounds *= scale
    radius *= scale
    height = np.mean(reset[:, :3, 3], 0)[2]
    circle = np.sqrt(radius**2 - height**2)
    path = []
    for theta in np.linspace(0.0, 2.0 * np.pi, num_views):
        position = np.array([circle * np.cos(theta), circle * np.sin(theta), height])
        back = _normalize(position)
        right = _normalize(np.cross(back, np.array([0, 0, -1.0])))
        path.append(np.stack([right, _normalize(np.cross(back, right)), back, position], 1))
    hwf = np.broadcast_to(poses[0, :3, -1:], (poses.shape[0], 3, 1))
    return np.concatenate([reset[:, :3, :4], hwf], -1), np.stack(path, 0)


# ----------------------------------------------------------------------------- NDC rays


def ndc_rays(origins: np.ndarray, directions: np.ndarray, focal, width, height, near: float = 1.0):
    """World rays ``(..., 3)`` -> NDC origins and directions ``(..., 3)`` (the reference's
    ``convert_to_ndc``): origins moved to z = -near, then the forward-facing projection.
    focal, width, height broadcast against the leading dimensions."""
    t = -(near + origins[..., 2]) / directions[..., 2]
    origins = origins + t[..., None] * directions
    dx, dy, dz = np.moveaxis(directions, -1, 0)
    ox, oy, oz = np.moveaxis(origins, -1, 0)
    fx, fy = 2 * focal / width, 2 * focal / height
    ndc_origins = np.stack([-fx * (ox / oz), -fy * (oy / oz), 1 + 2 * near / oz], -1)
    ndc_directions = np.stack([-fx * (dx / dz - ox / oz), -fy * (dy / dz - oy / oz), -2 * near / oz], -1)
    return ndc_origins, ndc_directions
