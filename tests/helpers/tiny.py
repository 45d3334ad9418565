"""The tiny model of the tests that train, save or serve a run: seconds on a CPU.

`tiny_settings(**values)` gives the settings values of such a run (as a yaml config file or
`resolve_train_settings` take them): the tiny model, on the CPU, on one thread, without
TensorBoard, plus whatever the test sets. `model=` changes single model fields;
`model=WIDER` is the wider tiny model of the tests that need it to learn in a few steps.
`tiny_run_settings(tmp_path, **values)` resolves such settings for an in-process run.

For the core tests: `MODEL_CONFIG` (a 3-layer model with a skip), `random_rays`, and the fast
path's `FAST_CONFIG`, `model_for` and `rays_and_pixels`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from golden import BLENDER

from mipnerf_cli.core.models.mipnerf import MipNerf, ModelConfig
from mipnerf_cli.core.rays import RayBundle

TINY_MODEL = {
    "num_samples": 4,
    "netdepth": 2,
    "netwidth": 16,
    "netwidth_condition": 8,
    "max_deg_point": 4,
    "deg_view": 2,
}
# Twice the samples and the width, two more point frequencies.
WIDER = {"num_samples": 8, "netwidth": 32, "netwidth_condition": 16, "max_deg_point": 6}


def tiny_settings(model: dict | None = None, **values) -> dict:
    """Settings values for a tiny run; `values` override the defaults, `model` the model's fields."""
    return {
        "tensorboard": False,
        "device": "cpu",
        "cpu_threads": 1,  # tiny models run several times faster on one thread of a busy machine
        **values,
        "model": {**TINY_MODEL, **(model or {})},
    }


def tiny_config(path: Path, model: dict | None = None, **values) -> Path:
    """`tiny_settings(model, **values)` written as a yaml config file at `path`; returns `path`."""
    values = {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}
    path.write_text(yaml.safe_dump(tiny_settings(model, **values), sort_keys=False))
    return path


def tiny_run_settings(tmp_path: Path, **overrides):
    """Resolved TrainSettings of a 6-step run of the wider tiny model on the tiny Blender scene,
    validating one view at 1/4 every 3 steps; `overrides` (`model=` merges) change any value."""
    from mipnerf_cli.settings import resolve_train_settings

    model = overrides.pop("model", {})
    values = {
        "data": BLENDER,
        "out_dir": tmp_path / "out",
        "exp_name": "t",
        "batch_size": 128,
        "max_steps": 6,
        "check_interval": 3,
        "log_interval": 1,
        "lr_init": 5e-3,
        "lr_final": 5e-4,
        "lr_delay_steps": 0,
        "val_views": 1,
        "val_downscale": 4,
        **overrides,
    }
    return resolve_train_settings(None, tiny_settings(model={**WIDER, **model}, **values))


# ----------------------------------------------------------------------------- core: models and rays

MODEL_CONFIG = ModelConfig(num_samples=8, netdepth=3, netwidth=16, netwidth_condition=8, skip_layer=2, max_deg_point=6)
FAST_CONFIG = ModelConfig(
    num_samples=8, netdepth=3, netwidth=16, netwidth_condition=8, skip_layer=2, max_deg_point=6, deg_view=2
)


def random_rays(n: int, seed: int = 0, shape: tuple[int, ...] = ()) -> RayBundle:
    gen = torch.Generator().manual_seed(seed)
    lead = (*shape, n) if shape else (n,)
    origins = torch.nn.functional.normalize(torch.randn(*lead, 3, generator=gen), dim=-1) * 4
    directions = -origins + torch.rand(*lead, 3, generator=gen) * 2 - 1
    return RayBundle(
        origins=origins,
        directions=directions,
        viewdirs=torch.nn.functional.normalize(directions, dim=-1),
        radii=torch.full((*lead, 1), 1e-3),
        near=torch.full((*lead, 1), 2.0),
        far=torch.full((*lead, 1), 6.0),
        lossmult=torch.ones(*lead, 1),
    )


def rays_and_pixels(n: int, seed: int = 0) -> tuple[RayBundle, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * 4
    directions = -origins + torch.rand(n, 3, generator=gen) * 2 - 1
    ones = torch.ones(n, 1)
    rays = RayBundle(
        origins=origins, directions=directions, viewdirs=torch.nn.functional.normalize(directions, dim=-1),
        radii=ones * 2e-3, near=ones * 2, far=ones * 6, lossmult=1 + torch.rand(n, 1, generator=gen),
    )  # fmt: skip
    return rays, torch.rand(n, 3, generator=gen)


def model_for(config: ModelConfig, seed: int = 0) -> MipNerf:
    torch.manual_seed(seed)
    model = MipNerf(config)
    with torch.no_grad():  # non-zero biases, so that their gradients and placement are checked too
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.uniform_(-0.1, 0.1)
    return model
