"""What bench runs: the anchor's rays, the rays of a square image, the seeded model and the
training settings of the anchor's workload (Adam at a constant 5e-4, randomized sampling,
white background, coarse loss x0.1)."""

from __future__ import annotations

import math

import torch

from mipnerf_cli.core.models.mipnerf import MipNerf
from mipnerf_cli.core.rays import RayBundle, pinhole_rays
from mipnerf_cli.settings import BenchSettings, TrainSettings

ANCHOR_RADIUS = 4.0
NEAR, FAR = 2.0, 6.0
# Blender's 800-pixel camera (focal 1111): the anchor's cone radius at distance 1.
ANCHOR_RAY_RADIUS = 0.5 / 1111.0 * 2 / 12**0.5
BLENDER_FOV_X = 0.6911112070083618  # radians, the nerf_synthetic cameras' camera_angle_x
MODEL_SEED = 0


def anchor_rays(num_rays: int, seed: int, device: torch.device | str = "cpu") -> RayBundle:
    """The anchor's rays: cameras on a sphere of radius 4 aimed at random points in [-1, 1]^3."""
    generator = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * ANCHOR_RADIUS
    target = (torch.rand(num_rays, 3, generator=generator) - 0.5) * 2.0
    directions = target - origins
    viewdirs = directions / directions.norm(dim=-1, keepdim=True)
    ones = torch.ones(num_rays, 1)
    rays = RayBundle(
        origins=origins, directions=directions, viewdirs=viewdirs, radii=ones * ANCHOR_RAY_RADIUS,
        near=ones * NEAR, far=ones * FAR, lossmult=ones,
    )  # fmt: skip
    return rays.to(device)


def image_rays(side: int, device: torch.device | str = "cpu") -> RayBundle:
    """The rays of a side x side pinhole image (Blender's 40-degree field of view) from a
    camera at distance 4 on the +z axis looking at the origin."""
    focal = 0.5 * side / math.tan(0.5 * BLENDER_FOV_X)
    cam2world = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, ANCHOR_RADIUS]])
    return pinhole_rays(cam2world, side, side, focal, NEAR, FAR).to(device)


def build_model(settings: BenchSettings, device: torch.device) -> MipNerf:
    """The model of `settings`, its initial weights drawn from its own generator (seed
    MODEL_SEED), so every phase measures the same weights and torch's global generator is
    left alone."""
    generator = torch.Generator().manual_seed(MODEL_SEED)
    return MipNerf(settings.model.to_model_config(), generator=generator).to(device)


def train_settings(settings: BenchSettings) -> TrainSettings:
    """The training settings of the anchor's workload, with bench's batch and fast-path switches."""
    extra = {"fast_micro_batch": settings.fast_micro_batch} if settings.fast_micro_batch > 0 else {}
    return TrainSettings(
        batch_size=settings.batch, lr_init=5e-4, lr_final=5e-4, lr_delay_steps=0, randomized=True,
        white_bkgd=True, coarse_loss_mult=0.1, device=settings.device, cpu_threads=settings.cpu_threads,
        mixed_precision=settings.mixed_precision, tf32=settings.tf32, fast_path=settings.fast_path,
        fast_workers=settings.fast_workers, compile=settings.compile, model=settings.model,
        cpu_kernel=settings.cpu_kernel, **extra,
    )  # fmt: skip
