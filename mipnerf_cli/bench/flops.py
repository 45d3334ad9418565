"""The model's FLOPs: matmul FLOPs (2 * in * out per Dense layer per sample) of the reference
layer layout, from the config's layer shapes. A training step costs 3x the forward (forward,
input gradients, weight gradients); a rendered ray the forward of every level (the model's
FLOPs, whatever our renderer skips)."""

from __future__ import annotations

import dataclasses

from mipnerf_cli.core.models.mipnerf import ModelConfig


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    name: str
    in_features: int
    out_features: int

    @property
    def flops(self) -> int:
        return 2 * self.in_features * self.out_features


def dense_layers(config: ModelConfig) -> list[DenseLayer]:
    """The Dense layers one sample passes through, in the reference's order and widths."""
    point = config.point_features
    layers, width = [], point
    for i in range(config.netdepth):
        layers.append(DenseLayer(f"trunk{i}", width, config.netwidth))
        skips = i % config.skip_layer == 0 and i > 0
        width = config.netwidth + (point if skips else 0)
    layers.append(DenseLayer("density", width, 1))
    if config.use_viewdirs:
        layers.append(DenseLayer("bottleneck", width, config.netwidth))
        width = config.netwidth + config.view_features
        for i in range(config.netdepth_condition):
            layers.append(DenseLayer(f"condition{i}", width, config.netwidth_condition))
            width = config.netwidth_condition
    layers.append(DenseLayer("rgb", width, 3))
    return layers


@dataclasses.dataclass(frozen=True)
class FlopCount:
    forward_per_sample: int  # the whole MLP once
    samples_per_ray: int  # num_samples * num_levels

    @property
    def forward_per_ray(self) -> int:
        return self.forward_per_sample * self.samples_per_ray

    @property
    def train_per_ray(self) -> int:
        return 3 * self.forward_per_ray

    @property
    def render_per_ray(self) -> int:
        return self.forward_per_ray


def model_flops(config: ModelConfig) -> FlopCount:
    """Matmul FLOPs of the model (paper config: 1.22 MFLOP per sample, 0.94 GFLOP per trained ray)."""
    per_sample = sum(layer.flops for layer in dense_layers(config))
    return FlopCount(per_sample, config.num_samples * config.num_levels)


def flops_summary(config: ModelConfig) -> dict:
    """The FLOP count as plain values (the result's `flops` entry)."""
    flops = model_flops(config)
    return {
        "forward_per_sample": flops.forward_per_sample,
        "samples_per_ray": flops.samples_per_ray,
        "train_per_ray": flops.train_per_ray,
        "render_per_ray": flops.render_per_ray,
        "layers": [dataclasses.asdict(layer) for layer in dense_layers(config)],
    }
