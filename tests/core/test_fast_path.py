"""The CPU fast path (core/fast.py, the fused MLP) against the plain path: same numbers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny import FAST_CONFIG as TINY
from tiny import model_for, rays_and_pixels
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse: tiny models run faster on one thread)

from mipnerf_cli import training
from mipnerf_cli.core import fast
from mipnerf_cli.core.kernels import kernel_named, onednn_available
from mipnerf_cli.core.losses import mipnerf_loss
from mipnerf_cli.core.models.mipnerf import MLP, MipNerf
from mipnerf_cli.settings import ModelSettings, TrainSettings

# The fast path's matmul kernels, each forced (the probe's choice is tested in test_kernels.py).
KERNELS = ["mkl", pytest.param("onednn", marks=pytest.mark.skipif(not onednn_available(), reason="no oneDNN"))]


def concatenating_mlp(mlp: MLP, x: torch.Tensor, condition: torch.Tensor | None):
    """The reference's MLP, written the straightforward way (concatenations, one Linear each)."""
    inputs, h = x, x
    for i, layer in enumerate(mlp.trunk):
        h = torch.relu(layer(h))
        if mlp._skips_after(i):
            h = torch.cat([h, inputs], dim=-1)
    raw_density = mlp.density_head(h)
    if mlp.bottleneck is not None:
        bottleneck = mlp.bottleneck(h)
        h = torch.cat([bottleneck, condition[..., None, :].expand(*bottleneck.shape[:-1], condition.shape[-1])], dim=-1)
        for layer in mlp.condition_layers:
            h = torch.relu(layer(h))
    return mlp.rgb_head(h), raw_density


@pytest.mark.parametrize(
    "config",
    [
        TINY,  # the last trunk layer skips: both heads see [h, inputs]
        dataclasses.replace(TINY, netdepth=4),
        dataclasses.replace(TINY, use_viewdirs=False),
        dataclasses.replace(TINY, netdepth_condition=0),  # the rgb head sees [bottleneck, condition]
        dataclasses.replace(TINY, netdepth_condition=2),
    ],
)
@pytest.mark.parametrize("kernel", KERNELS)
def test_fused_mlp_equals_the_concatenating_mlp(config, kernel):
    mlp = model_for(config).mlp
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, config.point_features, generator=gen)
    condition = torch.randn(3, config.view_features, generator=gen) if config.use_viewdirs else None
    want_rgb, want_density = concatenating_mlp(mlp, x, condition)
    (want_rgb.square().sum() + want_density.square().sum()).backward()
    want_grads = [p.grad.clone() for p in mlp.parameters()]
    mlp.zero_grad()
    rgb, density = mlp(x, condition, kernel=kernel_named(kernel))
    (rgb.square().sum() + density.square().sum()).backward()
    torch.testing.assert_close(rgb, want_rgb, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(density, want_density, atol=1e-6, rtol=1e-5)
    for got, want in zip((p.grad for p in mlp.parameters()), want_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert rgb.shape == (3, 5, 3) and density.shape == (3, 5, 1)
    assert mlp(x, condition, density_only=True, kernel=kernel_named(kernel))[0] is None


def test_drawn_noise_is_what_the_forward_pass_draws():
    model = model_for(dataclasses.replace(TINY, density_noise=0.5))
    rays, _ = rays_and_pixels(6)
    own = model(rays, randomized=True, white_bkgd=True, generator=torch.Generator().manual_seed(3))
    noise = model.draw_noise((6,), torch.Generator().manual_seed(3))
    assert [sorted(level) for level in noise] == [["density", "uniform"]] * 2
    assert noise[0]["uniform"].shape == (6, 9) and noise[0]["density"].shape == (6, 8, 1)
    given = model(rays, randomized=True, white_bkgd=True, noise=noise)
    for a, b in zip(own, given):
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.distance, b.distance)
    # Slices of the batch's noise reproduce the batch's outputs ray by ray.
    part = model(
        rays[2:5], randomized=True, white_bkgd=True, noise=[{k: v[2:5] for k, v in lv.items()} for lv in noise]
    )
    torch.testing.assert_close(part[-1].rgb, given[-1].rgb[2:5], atol=1e-6, rtol=0)


def test_last_level_only_gives_the_same_last_level():
    model = model_for(TINY)
    rays, _ = rays_and_pixels(7)
    with torch.no_grad():
        full = model(rays, randomized=False, white_bkgd=True)
        last = model(rays, randomized=False, white_bkgd=True, last_level_only=True)
    assert len(last) == 1
    for field in ("rgb", "distance", "acc"):
        assert torch.equal(getattr(last[0], field), getattr(full[-1], field))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("micro_batch,workers", [(4, 1), (5, 2), (3, 3), (64, 2)])
def test_fast_gradients_equal_the_plain_gradients(micro_batch, workers, kernel):
    config = dataclasses.replace(TINY, density_noise=0.3)
    model = model_for(config)
    rays, pixels = rays_and_pixels(13)
    outputs = model(rays, randomized=True, white_bkgd=True, generator=torch.Generator().manual_seed(9))
    want_loss, want_levels = mipnerf_loss(outputs, pixels, rays.lossmult, coarse_loss_mult=0.1)
    want_loss.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    loss, levels = fast.forward_backward(
        model, rays, pixels, rays.lossmult, randomized=True, white_bkgd=True, coarse_loss_mult=0.1,
        generator=torch.Generator().manual_seed(9), options=fast.FastOptions(micro_batch, workers, kernel=kernel),
    )  # fmt: skip
    assert not loss.requires_grad
    torch.testing.assert_close(loss, want_loss.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(levels, want_levels.detach(), atol=1e-6, rtol=1e-5)
    for p, w in zip(model.parameters(), want):
        torch.testing.assert_close(p.grad, w, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fast_path_is_deterministic(kernel):
    model = model_for(TINY)
    rays, pixels = rays_and_pixels(11)

    def grads():
        model.zero_grad(set_to_none=True)
        fast.forward_backward(
            model, rays, pixels, rays.lossmult, randomized=True, white_bkgd=False, coarse_loss_mult=0.1,
            generator=torch.Generator().manual_seed(2), options=fast.FastOptions(3, 2, kernel=kernel),
        )  # fmt: skip
        return [p.grad.clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(grads(), grads()))


@pytest.mark.parametrize("kernel", KERNELS)
def test_fast_render_equals_the_plain_forward(kernel):
    model = model_for(TINY)
    rays, _ = rays_and_pixels(23)
    with torch.no_grad():
        want = model(rays, randomized=False, white_bkgd=True)[-1]
    options = fast.FastOptions(micro_batch=4, workers=2, kernel=kernel)
    got = fast.render_last_level(model, rays, white_bkgd=True, options=options)
    for field in ("rgb", "distance", "acc"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), atol=1e-6, rtol=0)
    assert not got.rgb.is_inference()  # callers may write into the results
    empty = fast.render_last_level(model, rays[:0], white_bkgd=True)
    assert empty.rgb.shape == (0, 3)


def test_blocks_are_dealt_in_order_and_cover_the_batch():
    plan = fast._blocks(10, 3, 2)
    assert plan == [[(0, 3), (3, 6)], [(6, 9), (9, 10)]]
    assert fast._blocks(4, 8, 4) == [[(0, 4)]]


def _train_losses(fast_path: bool, steps: int = 20, kernel: str = "auto") -> list[float]:
    settings = TrainSettings(
        batch_size=24, lr_init=2e-3, lr_final=2e-3, lr_delay_steps=0, fast_path=fast_path, fast_micro_batch=5,
        fast_workers=2, model=ModelSettings(**dataclasses.asdict(TINY)), cpu_kernel=kernel,
    )  # fmt: skip
    torch.manual_seed(0)
    model = MipNerf(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    rays, pixels = rays_and_pixels(240, seed=4)
    losses = []
    for step in range(1, steps + 1):
        batch = slice((step % 10) * 24, (step % 10 + 1) * 24)
        generator = training.step_generator(0, step, "noise", torch.device("cpu"))
        stats = training.train_step(model, optimizer, rays[batch], pixels[batch], 2e-3, settings, generator).get()
        losses.append(stats.loss)
    return losses


@pytest.mark.parametrize("kernel", KERNELS)
def test_fast_and_plain_training_give_the_same_loss_after_20_steps(kernel):
    plain, fast_losses = _train_losses(False), _train_losses(True, kernel=kernel)
    assert plain[-1] < plain[0]  # it trains
    assert abs(plain[-1] - fast_losses[-1]) <= 1e-4
    assert max(abs(a - b) for a, b in zip(plain, fast_losses)) <= 1e-4


@pytest.mark.slow
def test_compiled_whole_batch_path_matches_eager():
    # The CUDA path (whole batch per step, torch.compile; bf16 autocast only on CUDA) run on a CPU.
    settings = TrainSettings(
        batch_size=12, fast_path=False, compile=True, model=ModelSettings(**dataclasses.asdict(TINY))
    )
    rays, pixels = rays_and_pixels(12, seed=6)
    losses = []
    for compiled in (False, True):
        model = model_for(TINY)
        if compiled:
            model.compile(dynamic=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        run = [
            training.train_step(
                model, optimizer, rays, pixels, 1e-3, settings, training.step_generator(0, step, "noise")
            )
            .get()
            .loss
            for step in range(1, 4)
        ]
        losses.append(run)
        assert all(not key.startswith("_orig_mod") for key in model.state_dict())
    assert max(abs(a - b) for a, b in zip(*losses)) <= 1e-4
