"""The training views as export sees them: each rendered once by the model (any family,
through ``core.render.render_rays``), and each pixel's surface turned into a depth along the
view's axis and a world point.

A pixel whose accumulated opacity reaches `surface_acc` has a surface (at the distance the
caller gives: export's first-hit distance, see export/surface.py); one under `empty_acc`
looked through empty space (depth +inf: the fusion carves along it); one in between is
unsure (nan: no vote either way). Forward-facing scenes' rays are in NDC: their points are
unprojected to the world (``fusion.world_from_ndc``) before their depth is taken.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from mipnerf_cli.core.rays import pix2cam
from mipnerf_cli.core.render import render_rays
from mipnerf_cli.export import fusion

Progress = Callable[[str, int, int], None]  # (stage, done, total)
NDC_FAR = 0.999  # NDC distances beyond this (over 1000 times the near plane) count as unsure


@dataclasses.dataclass
class RenderedViews:
    """V rendered training views (H, W each).

    cam2world: (V, 3, 4) float64;  pix2cam: (V, 3, 3) float64 inverse intrinsics;
    colours: V (H, W, 3) float32 in [0, 1], the surface's own colour (rgb / acc);
    acc: V (H, W) accumulated opacity;  distance: V (H, W) the rendered (expected) distance
    along the model's rays;  ndc: the rays are in NDC.
    """

    cam2world: torch.Tensor
    pix2cam: torch.Tensor
    colours: list[torch.Tensor]
    acc: list[torch.Tensor]
    distance: list[torch.Tensor]
    ndc: bool


@torch.no_grad()
def render_views(
    model, cameras, chunk: int, device: torch.device, progress: Optional[Progress] = None
) -> RenderedViews:
    """Render every camera of `cameras` (``runs.trained.SceneCameras``) with `model`."""
    count = cameras.cam2world.shape[0]
    cam2world = cameras.cam2world.double()
    colours, acc, distance = [], [], []
    for index in range(count):
        width, height = cameras.widths[index], cameras.heights[index]
        rays = cameras.rays(cam2world[index], width, height, float(cameras.focals[index]))
        out = render_rays(model, rays, chunk, white_bkgd=False, device=device)
        colours.append((out["rgb"] / out["acc"].clamp(min=1e-3)[:, None]).clamp(0, 1).reshape(height, width, 3))
        acc.append(out["acc"].reshape(height, width))
        distance.append(out["distance"].reshape(height, width))
        if progress is not None:
            progress("views", index + 1, count)
    intrinsics = pix2cam(cameras.focals.double(), torch.tensor(cameras.widths), torch.tensor(cameras.heights))
    return RenderedViews(cam2world, intrinsics, colours, acc, distance, bool(cameras.ndc))


def world_points(origins: torch.Tensor, directions: torch.Tensor, distance: torch.Tensor, ndc) -> torch.Tensor:
    """(N, 3) float64 world points at `distance` (N,) along rays (N, 3) of the model's space;
    ndc: None for world rays, else (focal, width, height) the NDC was made for."""
    points = origins.double() + distance.double()[:, None] * directions.double()
    return points if ndc is None else fusion.world_from_ndc(points, *ndc)


def surface_depth(
    distance: torch.Tensor,
    acc: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    cam2world: torch.Tensor,
    ndc,
    surface_acc: float,
    empty_acc: float,
):
    """One view's surface as a depth map and world points.

    distance (N,): where each of the view's N rays (origins, directions (N, 3), world or NDC)
    meets the surface (+inf: nowhere);  acc (N,): the rendered opacity;  cam2world: (3, 4);
    ndc: None, or (focal, width, height).
    Returns (depth (N,) float32 along the view axis (+inf empty, nan unsure), surface (N,)
    bool, points (N, 3) float64 world points (meaningful where surface)).
    """
    finite = torch.isfinite(distance)
    points = world_points(origins, directions, torch.where(finite, distance, torch.zeros_like(distance)), ndc)
    depth = -fusion.camera_from_world(points, cam2world.double())[:, 2]
    surface = (acc >= surface_acc) & finite
    if ndc is not None:
        surface &= distance < NDC_FAR
    empty = acc < empty_acc
    unsure = torch.full_like(depth, float("nan"))
    depth_map = torch.where(surface, depth, torch.where(empty, torch.full_like(depth, float("inf")), unsure))
    return depth_map.float(), surface, points
