"""core/losses.py: the training objective and its gradients, the learning-rate schedule, PSNR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from golden import load_golden
from reference_weights import golden_error, golden_rays, load_reference_weights, reference_grads

from mipnerf_cli.core.losses import learning_rate_decay, mipnerf_loss, mse_to_psnr
from mipnerf_cli.core.models.mipnerf import LevelOutput, MipNerf, ModelConfig

GRAD_TOL = 1e-4  # relative to each gradient tensor's largest magnitude


def test_train_step_golden_loss_and_gradients():
    z = load_golden("train_step")
    weights = load_golden("model_forward")  # train_step uses model_forward's kernels and biases
    model = MipNerf(ModelConfig(num_samples=int(z["num_samples"]), ray_shape=str(z["ray_shape"])))
    load_reference_weights(model, weights)
    rays = golden_rays(z)
    outputs = model(rays, randomized=bool(z["randomized"]), white_bkgd=True)
    loss, level_losses = mipnerf_loss(
        outputs, torch.from_numpy(z["pixels"]), rays.lossmult, float(z["coarse_loss_mult"])
    )
    assert golden_error(loss, z["loss"]) <= 1e-5
    assert golden_error(level_losses, z["losses"]) <= 1e-5
    loss.backward()
    golden = {**weights, **{k: v for k, v in z.items() if k.startswith("grad_")}}
    pairs = reference_grads(model, golden)
    assert len(pairs) == 24
    for name, got, want in pairs:
        err = np.abs(got.numpy() - want).max() / np.abs(want).max()
        assert err <= GRAD_TOL, f"{name}: {err:.3g}"


@pytest.mark.parametrize("key, delay_steps", [("lr", 2500), ("lr_no_delay", 0)])
def test_learning_rate_decay_golden(key, delay_steps):
    z = load_golden("train_step")
    got = np.array(
        [learning_rate_decay(int(s), 5e-4, 5e-6, 1_000_000, lr_delay_steps=delay_steps, lr_delay_mult=0.01)
         for s in z["lr_steps"]]
    )  # fmt: skip
    # The reference computed in float32; relative 1e-5 covers its rounding.
    np.testing.assert_allclose(got, z[key], rtol=1e-5, atol=0)


def test_learning_rate_decay_endpoints():
    assert learning_rate_decay(0, 1e-3, 1e-5, 100) == pytest.approx(1e-3)
    assert learning_rate_decay(50, 1e-3, 1e-5, 100) == pytest.approx(1e-4)  # log-linear midpoint
    assert learning_rate_decay(100, 1e-3, 1e-5, 100) == pytest.approx(1e-5)
    assert learning_rate_decay(500, 1e-3, 1e-5, 100) == pytest.approx(1e-5)  # held after max_steps
    assert learning_rate_decay(0, 1e-3, 1e-5, 100, lr_delay_steps=10, lr_delay_mult=0.1) == pytest.approx(1e-4)
    undelayed = learning_rate_decay(10, 1e-3, 1e-5, 100)
    assert learning_rate_decay(10, 1e-3, 1e-5, 100, lr_delay_steps=10, lr_delay_mult=0.1) == pytest.approx(undelayed)


def test_loss_hand_case():
    pixels = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    lossmult = torch.tensor([[1.0], [3.0]])
    coarse = LevelOutput(rgb=torch.tensor([[0.5, 0.0, 0.0], [1.0, 1.0, 1.0]]), distance=None, acc=None)
    fine = LevelOutput(rgb=torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]]), distance=None, acc=None)
    loss, level_losses = mipnerf_loss([coarse, fine], pixels, lossmult, coarse_loss_mult=0.1)
    # Coarse: 1 * 0.25 / (1 + 3); fine: 3 * 1 / 4 (the mask sum counts each ray once).
    torch.testing.assert_close(level_losses, torch.tensor([0.0625, 0.75]))
    torch.testing.assert_close(loss, torch.tensor(0.1 * 0.0625 + 0.75))


def test_mse_to_psnr():
    assert mse_to_psnr(0.01) == pytest.approx(20.0)
    assert mse_to_psnr(1.0) == 0.0
    assert mse_to_psnr(0.0) == math.inf
    torch.testing.assert_close(mse_to_psnr(torch.tensor([1e-3, 0.1])), torch.tensor([30.0, 10.0]))
    assert torch.isinf(mse_to_psnr(torch.tensor(0.0)))
