"""The default export's whole path (export/surface.py) through the model protocol alone: a
stand-in radiance field whose density is a ball, seen by 360° cameras and by forward-facing
NDC cameras. Any family that implements `render_last_level` and `density_at` exports so."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from mipnerf_cli.core.models.base import LevelOutput, RadianceField
from mipnerf_cli.data.formats.llff import pose_rays
from mipnerf_cli.demo.scenes import look_at, sphere_point
from mipnerf_cli.export import fusion, surface

CENTRE, RADIUS = torch.tensor([0.1, -0.1, 0.0]), 0.5
FORWARD_CENTRE = torch.tensor([0.2, 0.1, -4.0])  # in front of forward-facing cameras at z ~ 0


class Ball(RadianceField):
    """Density 200 inside a ball (a 0.01-wide edge), in world space or, with `ndc`, queried in
    NDC and unprojected first; rendered by marching its own density (512 samples)."""

    family = "ball"
    config_type = dict

    def __init__(self, centre: torch.Tensor, ndc=None):
        super().__init__()
        self.centre, self.ndc = centre, ndc
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # render_rays asks a parameter for the device

    def density_at(self, points, variance):
        world = points if self.ndc is None else fusion.world_from_ndc(points.double(), *self.ndc).float()
        inside = (RADIUS - (world - self.centre).norm(dim=-1)) / 0.01
        return 200.0 * torch.sigmoid(inside.clamp(-50, 50))

    def render_last_level(self, rays, white_bkgd):
        t = torch.linspace(0, 1, 513)
        t = rays.near + (rays.far - rays.near) * t  # (N, 513)
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        points = rays.origins[:, None] + mids[..., None] * rays.directions[:, None]
        sigma = self.density_at(points.reshape(-1, 3), 0.0).reshape(mids.shape)
        alpha = 1 - torch.exp(-sigma * (t[:, 1:] - t[:, :-1]) * rays.directions.norm(dim=-1, keepdim=True))
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
        weights = alpha * trans
        acc = weights.sum(1)
        distance = (weights * mids).sum(1) / acc.clamp(min=1e-6)
        rgb = acc[:, None] * torch.tensor([0.8, 0.4, 0.2])
        return LevelOutput(rgb, distance, acc)


@dataclasses.dataclass
class Cameras:
    """What export asks of ``runs.trained.SceneCameras``."""

    cam2world: torch.Tensor
    size: int
    focal: float
    near: float
    far: float
    ndc: bool

    @property
    def focals(self):
        return torch.full((len(self.cam2world),), self.focal, dtype=torch.float64)

    @property
    def widths(self):
        return [self.size] * len(self.cam2world)

    heights = widths

    @property
    def width(self):
        return self.size

    @property
    def centres(self):
        return self.cam2world[:, :3, 3]

    def rays(self, cam2world, width, height, focal):
        return pose_rays(cam2world, width, height, focal, self.near, self.far, self.ndc)


OPTIONS = surface.FusionOptions(resolution=96, surface_opacity=0.2, min_views=2, min_size=0.02, chunk=8192)


def test_a_ball_seen_from_all_around_exports_onto_its_surface():
    poses = [look_at(sphere_point(2 * math.pi * i / 10, 0.6 if i % 2 else -0.2, 3.0))[:3] for i in range(10)]
    cameras = Cameras(torch.tensor(np.stack(poses)), 48, 60.0, 1.0, 5.0, ndc=False)  # pixel: 0.04 at the ball
    box = (torch.full((3,), -1.5), torch.full((3,), 1.5))
    found = surface.training_surfaces(Ball(CENTRE), cameras, OPTIONS, box, torch.device("cpu"))
    points, colours, _ = surface.pointcloud(found, OPTIONS.min_views)
    # A hard edge in a trilinear grid reaches the opacity up to one march voxel (0.026 here)
    # early, so the surface sits up to about a voxel outside the ball; a pixel is 0.04 wide.
    error = ((torch.from_numpy(points) - CENTRE).norm(dim=-1) - RADIUS).abs()
    assert len(points) > 500 and float(error.max()) < 0.05, float(error.max())
    assert np.abs(colours.astype(int) - [204, 102, 51]).max() <= 3  # the rendered colour, unpremultiplied
    vertices, vertex_colours, faces, pieces, _, _ = surface.mesh(found, OPTIONS)
    error = ((torch.from_numpy(vertices) - CENTRE).norm(dim=-1) - RADIUS).abs()
    assert len(faces) > 200 and float(error.max()) < 0.075 and float(error.median()) < 0.045, (
        error.max(),
        error.median(),
    )
    assert pieces.total - pieces.dropped == 1 and len(vertex_colours) == len(vertices)


def test_a_forward_facing_scene_exports_through_ndc():
    """Cameras on a small grid near z = 0 looking down -z; the model sees NDC rays (near 0,
    far 1) and NDC density queries; the exported points and mesh land on the ball's front."""
    poses = []
    for x in (-0.3, 0.0, 0.3):
        for y in (-0.2, 0.2):
            pose = torch.eye(4, dtype=torch.float64)[:3]
            pose[:, 3] = torch.tensor([x, y, 0.0])
            poses.append(pose)
    cameras = Cameras(torch.stack(poses), 24, 30.0, 0.0, 1.0, ndc=True)
    model = Ball(FORWARD_CENTRE, ndc=(30.0, 24, 24))
    found = surface.training_surfaces(model, cameras, OPTIONS, None, torch.device("cpu"))
    points, _, _ = surface.pointcloud(found, OPTIONS.min_views)
    error = ((torch.from_numpy(points) - FORWARD_CENTRE).norm(dim=-1) - RADIUS).abs()
    assert len(points) > 100 and float(error.median()) < 0.05, (float(error.median()), float(error.max()))
    assert (points[:, 2] > float(FORWARD_CENTRE[2])).all()  # only the front, which the cameras see
    vertices, _, faces, _, _, _ = surface.mesh(found, OPTIONS)
    error = ((torch.from_numpy(vertices) - FORWARD_CENTRE).norm(dim=-1) - RADIUS).abs()
    assert len(faces) > 50 and float(error.median()) < 0.06, (float(error.median()), float(error.max()))
