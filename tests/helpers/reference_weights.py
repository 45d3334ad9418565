"""Helpers for checking against google/mipnerf's golden files: its MLP weights, rays, and the
error measure.

The golden files hold `kernel_i` [in, out] and `bias_i` [out] for the reference's Dense layers
in the order flax created them: trunk layers, density head, bottleneck, condition layers, rgb
head. A torch Linear holds the kernel transposed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from mipnerf_cli.core.models.mipnerf import MipNerf
from mipnerf_cli.core.rays import RayBundle

GOLDEN_TOL = 1e-5
RAY_FIELDS = ("origins", "directions", "viewdirs", "radii", "near", "far", "lossmult")


def golden_error(got: torch.Tensor, want: np.ndarray) -> float:
    """Max error, absolute for |values| <= 1 and relative above (the project's golden criterion)."""
    got64 = got.detach().cpu().numpy().astype(np.float64)
    want64 = np.asarray(want, dtype=np.float64)
    assert got64.shape == want64.shape, (got64.shape, want64.shape)
    assert np.isfinite(got64).all()
    return float((np.abs(got64 - want64) / np.maximum(1.0, np.abs(want64))).max())


def golden_rays(golden_dict: Mapping[str, np.ndarray]) -> RayBundle:
    """The rays stored in model_forward.npz / train_step.npz as a RayBundle."""
    return RayBundle(**{name: torch.from_numpy(np.asarray(golden_dict[name])) for name in RAY_FIELDS})


def reference_layer_order(model: MipNerf) -> list[nn.Linear]:
    """The model's Linear layers in the reference's creation order (index i = kernel_i)."""
    mlp = model.mlp
    layers = [*mlp.trunk, mlp.density_head]
    if mlp.bottleneck is not None:
        layers += [mlp.bottleneck, *mlp.condition_layers]
    return layers + [mlp.rgb_head]


def load_reference_weights(model: MipNerf, golden_dict: Mapping[str, np.ndarray]) -> None:
    """Copy kernel_i/bias_i of a golden file into model (in place); shapes must match exactly."""
    layers = reference_layer_order(model)
    stored = sum(1 for key in golden_dict if key.startswith("kernel_"))
    if stored != len(layers):
        raise ValueError(f"golden weights have {stored} layers, the model {len(layers)}")
    with torch.no_grad():
        for i, layer in enumerate(layers):
            kernel = torch.as_tensor(np.asarray(golden_dict[f"kernel_{i}"]), dtype=torch.float32)
            bias = torch.as_tensor(np.asarray(golden_dict[f"bias_{i}"]), dtype=torch.float32)
            if kernel.T.shape != layer.weight.shape or bias.shape != layer.bias.shape:
                raise ValueError(
                    f"layer {i}: golden kernel {tuple(kernel.shape)} / bias {tuple(bias.shape)} do not fit "
                    f"weight {tuple(layer.weight.shape)} / bias {tuple(layer.bias.shape)}"
                )
            layer.weight.copy_(kernel.T)
            layer.bias.copy_(bias)


def reference_grads(
    model: MipNerf, golden_dict: Mapping[str, np.ndarray]
) -> list[tuple[str, torch.Tensor, np.ndarray]]:
    """(name, torch grad in flax layout, golden grad) for every parameter, after a backward pass."""
    pairs = []
    for i, layer in enumerate(reference_layer_order(model)):
        pairs.append((f"grad_kernel_{i}", layer.weight.grad.T, golden_dict[f"grad_kernel_{i}"]))
        pairs.append((f"grad_bias_{i}", layer.bias.grad, golden_dict[f"grad_bias_{i}"]))
    return pairs
