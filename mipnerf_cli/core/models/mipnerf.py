"""The mip-NeRF model: one MLP queried at coarse then resampled fine intervals along each ray.

A port of google/mipnerf `internal/models.py` (MipNerfModel + MLP, commit 84c969e). The
forward only calls the engine functions of `mip` in the paper's order; the MLP keeps the
reference's layer layout and creation order (so reference weights map one to one) and its
initialisation (Glorot-uniform kernels, zero biases).
"""

from __future__ import annotations

import torch
from torch import nn

from mipnerf_cli.core import mip
from mipnerf_cli.core.kernels import MKL, DenseKernel
from mipnerf_cli.core.models.base import LevelOutput, Noise, RadianceField
from mipnerf_cli.core.models.mipnerf_config import ModelConfig
from mipnerf_cli.core.rays import RayBundle

__all__ = ["ModelConfig", "LevelOutput", "MLP", "MipNerf"]


def _dense(in_features: int, out_features: int, generator: torch.Generator | None = None) -> nn.Linear:
    """A Linear layer initialised like flax's Dense with glorot_uniform kernels (zero bias),
    drawn from `generator` (None: torch's global generator)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight, generator=generator)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """The reference's MLP: a ReLU trunk with skip connections, a density head and an optionally
    view-conditioned colour branch.

    Layers are created in the reference's order (trunk, density head, bottleneck, condition
    layers, rgb head), which `parameters()` and the state dict follow.
    """

    def __init__(
        self,
        input_features: int,
        condition_features: int,
        netdepth: int = 8,
        netwidth: int = 256,
        netdepth_condition: int = 1,
        netwidth_condition: int = 128,
        skip_layer: int = 4,
        num_rgb_channels: int = 3,
        num_density_channels: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.skip_layer = skip_layer
        self.trunk = nn.ModuleList()
        width = input_features
        for i in range(netdepth):
            self.trunk.append(_dense(width, netwidth, generator))
            width = netwidth + (input_features if self._skips_after(i) else 0)
        self.density_head = _dense(width, num_density_channels, generator)
        if condition_features:
            self.bottleneck = _dense(width, netwidth, generator)
            self.condition_layers = nn.ModuleList()
            width = netwidth + condition_features
            for _ in range(netdepth_condition):
                self.condition_layers.append(_dense(width, netwidth_condition, generator))
                width = netwidth_condition
        else:
            self.bottleneck = None
            self.condition_layers = nn.ModuleList()
        self.rgb_head = _dense(width, num_rgb_channels, generator)

    def _skips_after(self, i: int) -> bool:
        # The reference's rule: the input rejoins after layers skip_layer, 2*skip_layer, ...
        return i % self.skip_layer == 0 and i > 0

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor | None = None,
        density_only: bool = False,
        kernel: DenseKernel = MKL,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Evaluate the MLP at every sample.

        Args:
          x: (..., S, F) encoded samples.
          condition: (..., Fc) per-ray condition (encoded view direction), shared by the S samples
            of its ray; None when the model was built without one.
          density_only: skip the colour branch (raw_rgb is None then).
          kernel: the matmul kernel of the trunk, density head and bottleneck (`core.kernels`;
            the activations stay in its layout from the first trunk layer to those heads).
        Returns:
          raw_rgb: (..., S, 3) or None;  raw_density: (..., S, 1).

        The same function as the reference's concatenating MLP, arranged for speed (one matmul
        over all samples of all rays per layer, bias fused into it, ReLU in place): a layer fed
        a concatenation [a, b] multiplies a and b by the two column blocks of its kernel and
        adds, so nothing is copied and no gradient is formed for the encoded inputs, and the
        view-direction block of the condition layer is applied once per ray, not per sample.
        """
        sample_shape = x.shape[:-1]
        inputs = kernel.enter(x.reshape(-1, x.shape[-1]))
        h, rejoin = inputs, None  # rejoin: the inputs concatenated after h, if the last layer skipped
        for i, layer in enumerate(self.trunk):
            h = kernel.relu_(kernel.dense(layer, h, rejoin))
            rejoin = inputs if self._skips_after(i) else None
        raw_density = kernel.leave(kernel.dense(self.density_head, h, rejoin)).reshape(*sample_shape, -1)
        if density_only:
            return None, raw_density
        if self.bottleneck is not None:
            if condition is None:
                raise ValueError("this MLP was built with a condition input; pass one")
            bottleneck = kernel.leave(kernel.dense(self.bottleneck, h, rejoin))
            layers = [*self.condition_layers, self.rgb_head]
            first, width = layers[0], bottleneck.shape[-1]
            # The condition's share of the first layer: once per ray, broadcast over its samples.
            condition = condition.expand(*sample_shape[:-1], condition.shape[-1])
            per_ray = torch.addmm(first.bias, condition.reshape(-1, condition.shape[-1]), first.weight[:, width:].t())
            h = torch.mm(bottleneck, first.weight[:, :width].t())
            h = h.view(per_ray.shape[0], -1, h.shape[-1]).add_(per_ray[:, None, :]).view(-1, h.shape[-1])
            if first is self.rgb_head:
                return h.reshape(*sample_shape, -1), raw_density
            h = torch.relu_(h)
            for layer in layers[1:-1]:
                h = torch.relu_(torch.addmm(layer.bias, h, layer.weight.t()))
        else:
            h = kernel.leave(kernel.dense(self.rgb_head, h, rejoin))
            return h.reshape(*sample_shape, -1), raw_density
        raw_rgb = torch.addmm(self.rgb_head.bias, h, self.rgb_head.weight.t())
        return raw_rgb.reshape(*sample_shape, -1), raw_density


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x) as jax.nn.softplus computes it (max(x, 0) + log1p(exp(-|x|)))."""
    return torch.logaddexp(x, x.new_zeros(()))


class MipNerf(RadianceField):
    """mip-NeRF: cone tracing with integrated positional encoding, one MLP for all levels."""

    family = "mipnerf"
    config_type = ModelConfig
    supports_fast_path = True  # an 8x256 MLP per sample: cache-sized blocks pay on a CPU

    def __init__(self, config: ModelConfig = ModelConfig(), generator: torch.Generator | None = None) -> None:
        """generator: where the initial weights are drawn from (None: torch's global generator)."""
        super().__init__()
        self.config = config
        self.mlp = MLP(
            input_features=config.point_features,
            condition_features=config.view_features,
            netdepth=config.netdepth,
            netwidth=config.netwidth,
            netdepth_condition=config.netdepth_condition,
            netwidth_condition=config.netwidth_condition,
            skip_layer=config.skip_layer,
            generator=generator,
        )

    def draw_noise(
        self,
        batch_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Noise:
        """Every random number a randomized forward pass over rays of `batch_shape` uses, drawn
        in the order the pass itself would draw them (so the values are the same).

        Returns one dict per level: "uniform" (*batch_shape, S+1), the U[0, 1) sampling jitter,
        and, when density_noise > 0, "density" (*batch_shape, S, 1) standard normal draws.
        Slicing every tensor along the ray axes gives the noise of a subset of the rays: this
        is how a batch evaluated in pieces still sees the numbers of one whole-batch pass.
        """
        cfg = self.config
        noise = []
        for _ in range(cfg.num_levels):
            level = {
                "uniform": torch.rand(
                    (*batch_shape, cfg.num_samples + 1), generator=generator, dtype=dtype, device=device
                )
            }
            if cfg.density_noise > 0:
                level["density"] = torch.randn(
                    (*batch_shape, cfg.num_samples, 1), generator=generator, dtype=dtype, device=device
                )
            noise.append(level)
        return noise

    def forward(
        self,
        rays: RayBundle,
        randomized: bool,
        white_bkgd: bool,
        generator: torch.Generator | None = None,
        noise: Noise | None = None,
        last_level_only: bool = False,
        kernel: DenseKernel = MKL,
    ) -> list[LevelOutput]:
        """Render a batch of rays at every level.

        Args:
          rays: N rays (origins, directions, viewdirs (N, 3); radii, near, far (N, 1)).
          randomized: stratified jitter of the coarse samples, random inverse-CDF samples at
            finer levels, and density noise (if configured): training mode.
          white_bkgd: composite onto white instead of black.
          generator: source of all randomness (on the rays' device); default torch's global one.
          noise: the pass's random numbers drawn beforehand (`draw_noise`, sliced to these
            rays); the generator is then unused. Only read when randomized.
          last_level_only: return only the last level; the earlier ones then skip their colour
            branch (only their densities steer the resampling), which rendering never needs.
          kernel: the MLP's matmul kernel (`core.kernels`; the fast path picks it).
        Returns:
          One LevelOutput per level, coarse first: rgb (N, 3), distance (N,), acc (N,).
        """
        cfg = self.config
        if randomized and noise is None:
            noise = self.draw_noise(
                rays.origins.shape[:-1], generator, device=rays.origins.device, dtype=rays.origins.dtype
            )
        viewdirs_enc = (
            mip.pos_enc(rays.viewdirs, min_deg=0, max_deg=cfg.deg_view, append_identity=True)
            if cfg.use_viewdirs
            else None
        )
        outputs: list[LevelOutput] = []
        t_vals = weights = None
        for level in range(cfg.num_levels):
            uniform = noise[level]["uniform"] if randomized else None
            if level == 0:
                t_vals, (means, covs) = mip.sample_along_rays(
                    rays.origins, rays.directions, rays.radii, cfg.num_samples, rays.near, rays.far,
                    randomized, cfg.lindisp, cfg.ray_shape, uniform=uniform,
                )  # fmt: skip
            else:
                t_vals, (means, covs) = mip.resample_along_rays(
                    rays.origins, rays.directions, rays.radii, t_vals, weights,
                    randomized, cfg.ray_shape, cfg.stop_level_grad, cfg.resample_padding, uniform=uniform,
                )  # fmt: skip
            if cfg.disable_integration:
                covs = torch.zeros_like(covs)
            samples_enc = mip.integrated_pos_enc((means, covs), cfg.min_deg_point, cfg.max_deg_point)
            colour_unused = last_level_only and level < cfg.num_levels - 1
            raw_rgb, raw_density = self.mlp(samples_enc, viewdirs_enc, density_only=colour_unused, kernel=kernel)

            if randomized and cfg.density_noise > 0:
                # Noise on the raw density regularises it (the reference's option; 0 by default).
                raw_density = raw_density + cfg.density_noise * noise[level]["density"]

            # Under bf16 autocast the MLP's outputs are bf16: the activations run in float32
            # (a no-op for float32 outputs).
            raw_density, raw_rgb = raw_density.float(), (raw_rgb if raw_rgb is None else raw_rgb.float())
            density = _softplus(raw_density + cfg.density_bias)
            if colour_unused:
                rgb = density.new_zeros(()).expand(*density.shape[:-1], 3)
            else:
                rgb = torch.sigmoid(raw_rgb) * (1 + 2 * cfg.rgb_padding) - cfg.rgb_padding
            comp_rgb, distance, acc, weights = mip.volumetric_rendering(
                rgb, density, t_vals, rays.directions, white_bkgd
            )
            if not colour_unused:
                outputs.append(LevelOutput(comp_rgb, distance, acc))
        return outputs

    def render_last_level(self, rays: RayBundle, white_bkgd: bool, kernel: DenseKernel = MKL) -> LevelOutput:
        """The last level of a deterministic pass, the earlier levels' colour branch skipped.
        rays: N rays (flat). Returns rgb (N, 3), distance (N,), acc (N,)."""
        return self(rays, randomized=False, white_bkgd=white_bkgd, last_level_only=True, kernel=kernel)[-1]

    def matmul_shape(self, rays: int) -> tuple[int, int, int]:
        """The MLP's dominant matmul for a block of `rays` rays: (samples, netwidth, netwidth)."""
        return (rays * self.config.num_samples, self.config.netwidth, self.config.netwidth)

    def density_at(self, points: torch.Tensor, variance: float) -> torch.Tensor:
        """The density of isotropic Gaussians centred at `points` (the one MLP serves every
        level, so this is the fine level's density).

        points: (N, 3) centres.  variance: per-axis variance of each Gaussian (>= 0; ignored
        in NeRF mode, which encodes means only). Returns (N,) densities >= 0.
        """
        cfg = self.config
        covs = torch.full_like(points, 0.0 if cfg.disable_integration else variance)
        encoded = mip.integrated_pos_enc((points[:, None, :], covs[:, None, :]), cfg.min_deg_point, cfg.max_deg_point)
        _, raw_density = self.mlp(encoded, None, density_only=True)
        return _softplus(raw_density[:, 0, 0] + cfg.density_bias)
