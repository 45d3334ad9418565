"""What validation costs a CPU run, counted in rays rendered (not time).

Each shipped config is resolved as a user gets it; its validation split is stood in by a
set of the real split's image sizes, and the renderer is replaced by one that counts the
rays it is asked for. By default a CPU validation renders at most 5% of the rays trained
between two checks; GPUs, and `val_cpu_share: null`, render every chosen view at every scale.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mipnerf_cli import runtime as runtime_module
from mipnerf_cli.core import render
from mipnerf_cli.core.rays import RayBundle
from mipnerf_cli.settings import resolve_train_settings
from mipnerf_cli.training import validation

CPU = runtime_module.Runtime(device=torch.device("cpu"))
GPU = runtime_module.Runtime(device=torch.device("cuda"), fast_path=False)  # a policy only: nothing runs there


@dataclasses.dataclass
class Split:
    """The sizes of a validation split (an ImageSet's layout: each view's scales in a row)."""

    levels: list[int]
    heights: list[int]
    widths: list[int]
    multiscale: bool

    def image_rays(self, i: int):
        n = self.heights[i] * self.widths[i]
        column = torch.zeros(1, 1).expand(n, 1)
        rays = RayBundle(*(torch.zeros(1, 3).expand(n, 3),) * 3, column, column, column, column)
        return rays, torch.full((self.heights[i], self.widths[i], 3), 0.5)


def split(views: int, full: int, scales: int) -> Split:
    levels = [level for _ in range(views) for level in range(scales)]
    sizes = [full >> level for level in levels]
    return Split(levels, sizes, list(sizes), multiscale=scales > 1)


# (config, overrides, the validation split that config meets)
CASES = {
    # `make demo-lego`: lego shrunk 4x, 8 test views, converted to 4 scales (200 .. 25 px)
    "lego-cpu multiscale": ("lego-cpu", {"multiscale": True}, split(8, 200, 4)),
    # lego at --downscale 8 (100 px), validated at the training resolution (val_downscale 1)
    "lego-cpu": ("lego-cpu", {"downscale": 8}, split(200, 100, 1)),
    # the paper's multiscale lego: 200 test views at 800, 400, 200, 100 px
    "lego-multiscale (paper)": ("lego-multiscale", {}, split(200, 800, 4)),
    # the paper's lego, validated at val_downscale 4 (200 px)
    "lego (paper)": ("lego", {}, split(200, 200, 1)),
}


@pytest.fixture
def rendered(monkeypatch):
    """The number of rays the renderer was asked for, per call of `validate`."""
    counted = []

    def counting_render_rays(model, rays, chunk, white_bkgd, **options):
        counted.append(len(rays))
        return {"rgb": torch.zeros(len(rays), 3)}

    monkeypatch.setattr(render, "render_rays", counting_render_rays)
    return counted


def run_validation(config, overrides, val_set, runtime, counted, **settings) -> tuple[int, int, dict]:
    """(rays rendered, rays trained between two checks, the result) of one validation
    (`settings`: set after resolving, as a config file would: flags cannot say null)."""
    values = {"data": "/nonexistent/scene", "exp_name": "x", **overrides}
    resolved = resolve_train_settings(config, values).model_copy(update=settings)
    images = validation.val_images(val_set, resolved, runtime)
    counted.clear()
    result = validation.validate(torch.nn.Identity(), val_set, images, resolved, runtime, lambda: False)
    return sum(counted), resolved.batch_size * resolved.check_interval, result


@pytest.mark.parametrize("case", list(CASES))
def test_a_default_cpu_validation_renders_at_most_5_percent_of_the_rays_trained_between_checks(case, rendered):
    config, overrides, val_set = CASES[case]
    rays, trained, result = run_validation(config, overrides, val_set, CPU, rendered)
    assert 0 < rays <= 0.05 * trained, f"{case}: {rays} rays rendered for {trained} trained ({rays / trained:.1%})"
    assert result is not None and len(result["psnr_levels"]) == len(result["levels"])


def test_the_cpu_budget_keeps_whole_scales_smallest_first(rendered):
    config, overrides, val_set = CASES["lego-cpu multiscale"]
    rays, trained, result = run_validation(config, overrides, val_set, CPU, rendered)
    assert trained == 512 * 500
    # 2 views: 25 px and 50 px fit in 5% of 256,000 rays (2 * 3,125), 100 px does not
    assert result["levels"] == [2, 3] and rays == 2 * (50 * 50 + 25 * 25)


@pytest.mark.parametrize("case", ["lego-cpu multiscale", "lego-cpu"])
def test_a_gpu_or_val_cpu_share_null_renders_every_chosen_image(case, rendered):
    config, overrides, val_set = CASES[case]
    # val_views 2, every scale
    everything = 2 * (200**2 + 100**2 + 50**2 + 25**2) if val_set.multiscale else 2 * 100**2
    for runtime, settings in ((GPU, {}), (CPU, {"val_cpu_share": None})):
        rays, trained, result = run_validation(config, overrides, val_set, runtime, rendered, **settings)
        assert rays == everything and rays > 0.05 * trained  # what the CPU default saves
        assert result["levels"] == sorted(set(val_set.levels))


def test_within_budget_takes_single_scale_views_one_by_one_and_always_one():
    levels, rays = [0, 0, 0], [100, 100, 100]
    assert validation.within_budget([0, 1, 2], levels, rays, 250) == [0, 1]
    assert validation.within_budget([0, 1, 2], levels, rays, 10) == [0]  # never no validation at all
    assert validation.within_budget([0, 1, 2], levels, rays, None) == [0, 1, 2]
    # multiscale: whole scales from the cheapest, in the split's order
    levels, rays = [0, 1, 0, 1], [400, 100, 400, 100]
    assert validation.within_budget([0, 1, 2, 3], levels, rays, 500) == [1, 3]
    assert validation.within_budget([0, 1, 2, 3], levels, rays, 150) == [1]


def test_the_budget_is_at_least_a_couple_of_chunks():
    tiny = resolve_train_settings(None, {"data": "/x", "exp_name": "x", "batch_size": 32, "check_interval": 2})
    assert validation.ray_budget(tiny, CPU) == validation.MIN_BUDGET_RAYS
    assert validation.ray_budget(tiny, GPU) is None
