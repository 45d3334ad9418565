"""Rotations as unit quaternions (w, x, y, z), in pure torch: the one conversion of the package
(camera paths, the COLMAP reader, the viewer's browser cameras).
"""

from __future__ import annotations

import torch


def quaternion_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) with w >= 0 of rotation matrices.

    rotation: (..., 3, 3) proper rotations. Returns (..., 4) in their dtype. Uses the
    largest of the four candidate denominators, so it is stable for every rotation.
    """
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * (each component squared); the largest gives the best-conditioned formula.
    squares = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = squares.argmax(dim=-1)
    root = squares.clamp(min=1e-12).sqrt()  # 2 * |component|
    candidates = torch.stack(
        [
            torch.stack(
                [
                    root[..., 0] / 2,
                    (m[..., 2, 1] - m[..., 1, 2]) / (2 * root[..., 0]),
                    (m[..., 0, 2] - m[..., 2, 0]) / (2 * root[..., 0]),
                    (m[..., 1, 0] - m[..., 0, 1]) / (2 * root[..., 0]),
                ],
                -1,
            ),
            torch.stack(
                [
                    (m[..., 2, 1] - m[..., 1, 2]) / (2 * root[..., 1]),
                    root[..., 1] / 2,
                    (m[..., 0, 1] + m[..., 1, 0]) / (2 * root[..., 1]),
                    (m[..., 0, 2] + m[..., 2, 0]) / (2 * root[..., 1]),
                ],
                -1,
            ),
            torch.stack(
                [
                    (m[..., 0, 2] - m[..., 2, 0]) / (2 * root[..., 2]),
                    (m[..., 0, 1] + m[..., 1, 0]) / (2 * root[..., 2]),
                    root[..., 2] / 2,
                    (m[..., 1, 2] + m[..., 2, 1]) / (2 * root[..., 2]),
                ],
                -1,
            ),
            torch.stack(
                [
                    (m[..., 1, 0] - m[..., 0, 1]) / (2 * root[..., 3]),
                    (m[..., 0, 2] + m[..., 2, 0]) / (2 * root[..., 3]),
                    (m[..., 1, 2] + m[..., 2, 1]) / (2 * root[..., 3]),
                    root[..., 3] / 2,
                ],
                -1,
            ),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def rotation_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of quaternions (w, x, y, z); q: (..., 4), normalised here. Returns (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation of unit quaternions along the shorter arc.

    q0, q1: (..., 4); t: (...) in [0, 1] (0 gives q0, 1 gives q1 or -q1). Returns (..., 4).
    """
    dot = (q0 * q1).sum(-1)
    q1 = torch.where(dot[..., None] < 0, -q1, q1)  # q and -q are the same rotation: take the near one
    dot = dot.abs().clamp(max=1.0)
    angle = torch.acos(dot)
    sin = torch.sin(angle)
    near = sin < 1e-6  # (almost) the same rotation: linear interpolation is exact enough
    safe_sin = torch.where(near, torch.ones_like(sin), sin)
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * angle) / safe_sin)
    w1 = torch.where(near, t, torch.sin(t * angle) / safe_sin)
    q = w0[..., None] * q0 + w1[..., None] * q1
    return q / q.norm(dim=-1, keepdim=True)
