"""The mip-NeRF math: integrated positional encoding, conical frustums, sampling and rendering.

A PyTorch port of google/mipnerf `internal/mip.py` (plus the sampling and trig helpers of
`internal/math.py`) at commit 84c969e: same function names, argument order and semantics, so
the paper's equations can be read side by side with the reference. Randomness arrives as an
optional `generator` keyword instead of the reference's leading PRNG `key` argument.

Every function takes float32 tensors with any leading batch shape `...` on any device and is
differentiable wherever the reference is. Notation: S = intervals per ray, so `t_vals` holds the
S + 1 "fenceposts" and per-interval arrays hold S entries.

The reference ran in float32 under XLA; where the order of float32 operations decides a
discrete choice (the interval found for an inverse-CDF sample, the 100*pi wrap of sin) or gets
amplified (inverse-CDF positions inside low-weight bins), this port repeats that order.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch

__all__ = [
    "safe_sin",
    "safe_cos",
    "pos_enc",
    "expected_sin",
    "integrated_pos_enc",
    "lift_gaussian",
    "conical_frustum_to_gaussian",
    "cylinder_to_gaussian",
    "cast_rays",
    "sample_along_rays",
    "resample_along_rays",
    "sorted_piecewise_constant_pdf",
    "volumetric_rendering",
]

# float32 1 - 2**-23: the largest u the reference ever draws ("[0, 1 - eps]").
_FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
# The reference's wrap threshold 100*pi, as the float32 it became (314.15927, above 100*pi).
_TRIG_WRAP = float(torch.tensor(100 * math.pi, dtype=torch.float32))


def _wrap_large(x: torch.Tensor) -> torch.Tensor:
    """Python-style `x % (100*pi)` (result takes the divisor's sign) where |x| >= 100*pi.

    fmod is exact; the sign fix-up then adds the divisor once, as jnp.remainder does.
    """
    remainder = torch.fmod(x, _TRIG_WRAP)
    remainder = torch.where(remainder < 0, remainder + _TRIG_WRAP, remainder)
    return torch.where(x.abs() < _TRIG_WRAP, x, remainder)


def safe_sin(x: torch.Tensor) -> torch.Tensor:
    """sin(x) with arguments of magnitude >= 100*pi first wrapped into [0, 100*pi). Shape of x."""
    return torch.sin(_wrap_large(x))


def safe_cos(x: torch.Tensor) -> torch.Tensor:
    """cos(x) with arguments of magnitude >= 100*pi first wrapped into [0, 100*pi). Shape of x."""
    return torch.cos(_wrap_large(x))


@torch.compiler.assume_constant_result  # a constant for torch.compile, not a graph break
@functools.lru_cache(maxsize=None)
def _reciprocal(divisor: int) -> float:
    """float32 1/divisor. XLA turns division by a broadcast value into multiplication by its
    float32 reciprocal, which rounds differently from true division; the reference's `x / 3`
    (and `x / sum` over a broadcast axis) therefore mean `x * reciprocal`."""
    return float(torch.tensor(1.0, dtype=torch.float32) / divisor)


def _ipow(x: torch.Tensor, n: int) -> torch.Tensor:
    """x**n for a positive int by repeated squaring, in the multiplication order XLA's integer_pow uses."""
    result = None
    while n > 0:
        if n & 1:
            result = x if result is None else result * x
        n >>= 1
        if n > 0:
            x = x * x
    return result


_CONSTANTS: dict[tuple, torch.Tensor] = {}  # (name, args, dtype, device) -> a read-only constant


def _constant(key: tuple, dtype: torch.dtype, device: torch.device, build) -> torch.Tensor:
    """`build()` (a small CPU tensor) on `device` in `dtype`, built and copied once per device.

    A forward then sends no host->device copy (and no synchronisation) for its constants.
    Under torch.compile the value is built in the graph instead (dynamo folds it); the cached
    tensors are shared, so callers never write into them.
    """
    if torch.compiler.is_compiling():
        return build().to(device=device, dtype=dtype)
    full_key = (key, dtype, device)
    found = _CONSTANTS.get(full_key)
    if found is None:
        found = _CONSTANTS[full_key] = build().to(device=device, dtype=dtype)
    return found


def _degree_scales(min_deg: int, max_deg: int, like: torch.Tensor) -> torch.Tensor:
    """(L,) the frequencies 2**min_deg .. 2**(max_deg-1), in like's dtype on like's device (cached)."""
    return _constant(
        ("degree_scales", min_deg, max_deg),
        like.dtype,
        like.device,
        lambda: torch.tensor([2.0**i for i in range(min_deg, max_deg)], dtype=torch.float64),
    )


def pos_enc(x: torch.Tensor, min_deg: int, max_deg: int, append_identity: bool = True) -> torch.Tensor:
    """The positional encoding of the original NeRF.

    Args:
      x: (..., C) values to encode.
      min_deg, max_deg: frequencies 2**min_deg .. 2**(max_deg-1) (L = max_deg - min_deg of them).
    Returns:
      (..., C + 2*L*C) with identity, else (..., 2*L*C): [x, sin(x*2**l), sin(x*2**l + pi/2)],
      the feature index inside each sin block being l*C + axis.
    """
    scales = _degree_scales(min_deg, max_deg, x)
    xb = (x[..., None, :] * scales[:, None]).reshape(*x.shape[:-1], -1)
    four_feat = torch.sin(torch.cat([xb, xb + 0.5 * math.pi], dim=-1))
    if append_identity:
        return torch.cat([x, four_feat], dim=-1)
    return four_feat


def expected_sin(x: torch.Tensor, x_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of sin(z) for z ~ N(x, x_var).

    Args:
      x: (...) means.  x_var: (...) variances >= 0 (broadcastable to x).
    Returns:
      y: (...) E[sin z];  y_var: (...) Var[sin z], clamped at 0.
    """
    # A wide Gaussian shrinks the expected sinusoid towards zero.
    y = torch.exp(-0.5 * x_var) * safe_sin(x)
    y_var = torch.clamp_min(0.5 * (1 - torch.exp(-2 * x_var) * safe_cos(2 * x)) - y * y, 0)
    return y, y_var


def integrated_pos_enc(
    x_coord: tuple[torch.Tensor, torch.Tensor], min_deg: int, max_deg: int, diag: bool = True
) -> torch.Tensor:
    """Integrated positional encoding: the expected sinusoids of a Gaussian, E[sin(2**l * x)].

    Args:
      x_coord: (mean (..., C), cov) with cov (..., C) diagonal variances when diag, else full
        (..., C, C) covariances (only their diagonal matters: the basis is 2**l times identity).
      min_deg, max_deg: frequencies 2**min_deg .. 2**(max_deg-1) (L of them).
    Returns:
      (..., 2*L*C): a sin block then a cos block (computed as sin(y + pi/2)), index l*C + axis.
    """
    x, x_cov = x_coord
    x_var = x_cov if diag else torch.diagonal(x_cov, dim1=-2, dim2=-1)
    scales = _degree_scales(min_deg, max_deg, x)
    shape = (*x.shape[:-1], -1)
    y = (x[..., None, :] * scales[:, None]).reshape(shape)
    y_var = (x_var[..., None, :] * (scales * scales)[:, None]).reshape(shape)
    # Only expected_sin's mean enters the encoding; skip its variance. The sin and cos blocks
    # share one damping factor: computed once and broadcast over the two blocks.
    damping = torch.exp(-0.5 * y_var)
    sinusoids = safe_sin(torch.cat([y, y + 0.5 * math.pi], dim=-1))
    return (sinusoids.unflatten(-1, (2, -1)) * damping.unsqueeze(-2)).flatten(-2)


def lift_gaussian(
    d: torch.Tensor, t_mean: torch.Tensor, t_var: torch.Tensor, r_var: torch.Tensor, diag: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift a Gaussian along a ray (axis d) to 3D.

    Args:
      d: (..., 3) ray axis, not necessarily normalized.
      t_mean, t_var, r_var: (..., S) mean and variance along the ray, variance across it
        (r_var at |d| = 1 scale).
    Returns:
      mean: (..., S, 3);  cov: (..., S, 3) diagonal if diag else (..., S, 3, 3).
    """
    mean = d[..., None, :] * t_mean[..., None]
    d_mag_sq = torch.clamp_min((d * d).sum(dim=-1, keepdim=True), 1e-10)
    # A division broadcast over the last axis is a multiplication by the reciprocal in the reference.
    inv_d_mag_sq = torch.reciprocal(d_mag_sq)
    if diag:
        d_outer_diag = d * d
        null_outer_diag = 1 - d_outer_diag * inv_d_mag_sq
        t_cov_diag = t_var[..., None] * d_outer_diag[..., None, :]
        xy_cov_diag = r_var[..., None] * null_outer_diag[..., None, :]
        return mean, t_cov_diag + xy_cov_diag
    d_outer = d[..., :, None] * d[..., None, :]
    eye = torch.eye(d.shape[-1], dtype=d.dtype, device=d.device)
    null_outer = eye - d[..., :, None] * (d * inv_d_mag_sq)[..., None, :]
    t_cov = t_var[..., None, None] * d_outer[..., None, :, :]
    xy_cov = r_var[..., None, None] * null_outer[..., None, :, :]
    return mean, t_cov + xy_cov


def conical_frustum_to_gaussian(
    d: torch.Tensor,
    t0: torch.Tensor,
    t1: torch.Tensor,
    base_radius: torch.Tensor,
    diag: bool,
    stable: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate the conical frustum t in [t0, t1] of a cone from the origin by a Gaussian.

    Args:
      d: (..., 3) cone axis (not normalized; the cone radius at t is base_radius * t * |d|
        measured in the |d| = 1 frame, as the reference).
      t0, t1: (..., S) start and end distances (in units of d).
      base_radius: (..., S) or broadcastable, e.g. (..., 1): cone radius at t = 1.
      stable: use the paper's cancellation-free form (the other one fails for thin frustums).
    Returns:
      mean: (..., S, 3);  cov: (..., S, 3) if diag else (..., S, 3, 3).
    """
    if stable:
        mu = (t0 + t1) / 2
        hw = (t1 - t0) / 2
        mu2 = mu * mu
        hw2 = hw * hw
        hw4 = hw2 * hw2
        denom = 3 * mu2 + hw2
        t_mean = mu + (2 * mu * hw2) / denom
        t_var = hw2 * _reciprocal(3) - (4 / 15) * ((hw4 * (12 * mu2 - hw2)) / (denom * denom))
        r_var = base_radius * base_radius * (mu2 / 4 + (5 / 12) * hw2 - 4 / 15 * hw4 / denom)
    else:
        t_mean = (3 * (_ipow(t1, 4) - _ipow(t0, 4))) / (4 * (_ipow(t1, 3) - _ipow(t0, 3)))
        r_var = base_radius * base_radius * (3 / 20 * (_ipow(t1, 5) - _ipow(t0, 5)) / (_ipow(t1, 3) - _ipow(t0, 3)))
        t_mosq = 3 / 5 * (_ipow(t1, 5) - _ipow(t0, 5)) / (_ipow(t1, 3) - _ipow(t0, 3))
        t_var = t_mosq - t_mean * t_mean
    return lift_gaussian(d, t_mean, t_var, r_var, diag)


def cylinder_to_gaussian(
    d: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor, radius: torch.Tensor, diag: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate the cylinder section t in [t0, t1] around axis d by a Gaussian.

    Args:
      d: (..., 3) axis (not renormalized).  t0, t1: (..., S).  radius: broadcastable to (..., S).
    Returns:
      mean: (..., S, 3);  cov: (..., S, 3) if diag else (..., S, 3, 3).
    """
    t_mean = (t0 + t1) / 2
    r_var = radius * radius / 4
    t_var = (t1 - t0) * (t1 - t0) * _reciprocal(12)
    return lift_gaussian(d, t_mean, t_var, r_var, diag)


def cast_rays(
    t_vals: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    radii: torch.Tensor,
    ray_shape: str,
    diag: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the S intervals between fenceposts into S Gaussians (cone or cylinder sections).

    Args:
      t_vals: (..., S+1) sorted fenceposts.  origins, directions: (..., 3).  radii: (..., 1).
      ray_shape: 'cone' or 'cylinder'.
    Returns:
      means: (..., S, 3);  covs: (..., S, 3) if diag else (..., S, 3, 3).
    """
    t0 = t_vals[..., :-1]
    t1 = t_vals[..., 1:]
    if ray_shape == "cone":
        gaussian_fn = conical_frustum_to_gaussian
    elif ray_shape == "cylinder":
        gaussian_fn = cylinder_to_gaussian
    else:
        raise ValueError(f"ray_shape must be 'cone' or 'cylinder', not {ray_shape!r}")
    means, covs = gaussian_fn(directions, t0, t1, radii, diag)
    return means + origins[..., None, :], covs


def _linspace_from_zero(stop: float, num: int, like: torch.Tensor) -> torch.Tensor:
    """(num,) the reference's jnp.linspace(0, stop, num) in float32, bit for bit.

    Its values are i * (float32(stop) * float32(1/(num-1))) (XLA folds the constant factors
    together), which is not always the correctly rounded i*stop/(num-1) that torch.linspace
    aims for: for 25 or 41 points some entries differ in the last bit.
    """
    return _constant(
        ("linspace_from_zero", stop, num), torch.float32, like.device, lambda: _linspace_from_zero_cpu(stop, num)
    )


def _linspace_from_zero_cpu(stop: float, num: int) -> torch.Tensor:
    stop_t = torch.tensor(stop, dtype=torch.float32)
    if num == 1:
        return torch.zeros(1, dtype=torch.float32)
    step = stop_t * _reciprocal(num - 1)
    return torch.cat([torch.arange(num - 1, dtype=torch.float32) * step, stop_t[None]])


def sample_along_rays(
    origins: torch.Tensor,
    directions: torch.Tensor,
    radii: torch.Tensor,
    num_samples: int,
    near: torch.Tensor | float,
    far: torch.Tensor | float,
    randomized: bool,
    lindisp: bool,
    ray_shape: str,
    *,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Stratified sampling of num_samples intervals along each ray, then cast_rays.

    Args:
      origins, directions: (..., 3).  radii: (..., 1).
      near, far: (..., 1) or floats: integration bounds.
      randomized: jitter each fencepost uniformly within [midpoint before, midpoint after]
        (the first within [near, first midpoint], the last within [last midpoint, far]).
      lindisp: space fenceposts linearly in disparity instead of depth.
      generator: source of the jitter (on the rays' device); default torch's global one.
      uniform: (..., num_samples+1) the jitter's U[0, 1) draws, drawn beforehand (then the
        generator is not used); what `torch.rand` would draw here with the same generator.
    Returns:
      t_vals: (..., num_samples+1) fenceposts;  (means (..., num_samples, 3), covs (..., num_samples, 3)).
    """
    batch_shape = origins.shape[:-1]
    # As float32 tensors, so 1/near below is a float32 division as in the reference.
    near = torch.as_tensor(near, dtype=origins.dtype, device=origins.device)
    far = torch.as_tensor(far, dtype=origins.dtype, device=origins.device)
    t_vals = _linspace_from_zero(1.0, num_samples + 1, origins)
    if lindisp:
        t_vals = 1.0 / (1.0 / near * (1.0 - t_vals) + 1.0 / far * t_vals)
    else:
        t_vals = near * (1.0 - t_vals) + far * t_vals
    t_vals = torch.broadcast_to(t_vals, (*batch_shape, num_samples + 1))
    if randomized:
        mids = 0.5 * (t_vals[..., 1:] + t_vals[..., :-1])
        upper = torch.cat([mids, t_vals[..., -1:]], dim=-1)
        lower = torch.cat([t_vals[..., :1], mids], dim=-1)
        if uniform is None:
            uniform = torch.rand(t_vals.shape, generator=generator, dtype=t_vals.dtype, device=t_vals.device)
        t_rand = uniform
        t_vals = lower + (upper - lower) * t_rand
    means, covs = cast_rays(t_vals, origins, directions, radii, ray_shape)
    return t_vals, (means, covs)


def resample_along_rays(
    origins: torch.Tensor,
    directions: torch.Tensor,
    radii: torch.Tensor,
    t_vals: torch.Tensor,
    weights: torch.Tensor,
    randomized: bool,
    ray_shape: str,
    stop_grad: bool,
    resample_padding: float,
    *,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Hierarchical resampling: draw new fenceposts from the blurred weights of a coarser pass.

    Args:
      origins, directions: (..., 3).  radii: (..., 1).
      t_vals: (..., S+1) fenceposts of the coarser pass.  weights: (..., S) its rendering weights.
      stop_grad: detach the new fenceposts (no gradient into the coarser pass).
      resample_padding: added to the blurred weights, so no interval gets probability 0.
      generator: source of the randomized inverse-CDF samples (on the rays' device).
      uniform: (..., S+1) pre-drawn jitter for sorted_piecewise_constant_pdf (randomized only).
    Returns:
      new_t_vals: (..., S+1) (as many fenceposts as before);  (means (..., S, 3), covs (..., S, 3)).
    """
    # With stop_grad the sampling is recorded for no backward pass at all (same values).
    with torch.no_grad() if stop_grad else contextlib.nullcontext():
        # A 2-tap max then a 2-tap mean ("blurpool") widens every peak by one interval each side.
        weights_pad = torch.cat([weights[..., :1], weights, weights[..., -1:]], dim=-1)
        weights_max = torch.maximum(weights_pad[..., :-1], weights_pad[..., 1:])
        weights_blur = 0.5 * (weights_max[..., :-1] + weights_max[..., 1:])
        weights = weights_blur + resample_padding
        new_t_vals = sorted_piecewise_constant_pdf(
            t_vals, weights, t_vals.shape[-1], randomized, generator=generator, uniform=uniform
        )
    means, covs = cast_rays(new_t_vals, origins, directions, radii, ray_shape)
    return new_t_vals, (means, covs)


# The reference's float32 sums and prefix sums, in XLA's order of additions. The inverse CDF
# magnifies last-bit differences of the cdf when a sample lands in a low-weight bin (by up to
# bin width / bin probability), so the pdf normalisation and cdf repeat that order exactly.
_CUMSUM_BLOCK = 16  # XLA rewrites long scans as 16-wide sequential blocks plus block offsets.
_SUM_BLOCK = 32  # XLA's row sums of ray-batch-sized arrays add 32 elements at a time in order.


def _cumsum_xla_order(x: torch.Tensor) -> torch.Tensor:
    """(..., B) inclusive prefix sums over the last axis, added as XLA's float32 cumsum adds them.

    Sequential within blocks of 16; each block then gets the (recursively computed) prefix sum
    of the totals of the blocks before it. torch.cumsum instead accumulates in float64 on CPU.
    """
    length = x.shape[-1]
    if length <= _CUMSUM_BLOCK:
        partial = [x[..., 0]] if length else []
        for k in range(1, length):
            partial.append(partial[-1] + x[..., k])
        return torch.stack(partial, dim=-1) if length else x.clone()
    pad = (-length) % _CUMSUM_BLOCK
    blocks = torch.nn.functional.pad(x, (0, pad)).reshape(*x.shape[:-1], -1, _CUMSUM_BLOCK)
    within = _cumsum_xla_order(blocks)
    block_prefix = _cumsum_xla_order(within[..., -1])
    offsets = torch.cat([torch.zeros_like(block_prefix[..., :1]), block_prefix[..., :-1]], dim=-1)
    return (within + offsets[..., None]).reshape(*x.shape[:-1], -1)[..., :length]


def _sum_xla_order(x: torch.Tensor) -> torch.Tensor:
    """(..., B) -> (..., 1) sums over the last axis: left to right within blocks of 32, then the
    block sums left to right (XLA's order for ray batches up to about 64 x 32; for larger
    arrays XLA picks other orders by shape)."""
    length = x.shape[-1]
    if length <= _SUM_BLOCK:
        total = x[..., 0:1]
        for k in range(1, length):
            total = total + x[..., k : k + 1]
        return total
    # All blocks are summed side by side (31 additions instead of one per element: same
    # order, so the same bits). A zero-padded tail adds exact zeros after its last element.
    pad = (-length) % _SUM_BLOCK
    blocks = torch.nn.functional.pad(x, (0, pad)).reshape(*x.shape[:-1], -1, _SUM_BLOCK)
    block_sums = _sum_xla_order(blocks)[..., 0]
    total = block_sums[..., 0:1]
    for k in range(1, block_sums.shape[-1]):
        total = total + block_sums[..., k : k + 1]
    return total


def sorted_piecewise_constant_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    randomized: bool,
    *,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse-CDF sampling of the piecewise-constant density given by weights over sorted bins.

    Args:
      bins: (..., B+1) sorted bin edges.  weights: (..., B) non-negative bin weights.
      num_samples: n, the number of samples per row.
      randomized: stratified u (one uniform draw in each [i/n, (i+1)/n)) instead of the
        deterministic u = linspace(0, 1 - 2**-23, n).
      generator: source of the random u (on the bins' device).
      uniform: (..., n) the U[0, 1) draws of the jitter, drawn beforehand (randomized only).
    Returns:
      (..., n) sorted samples.
    """
    # Rows summing below eps are topped up evenly to eps, so empty rows sample uniformly.
    eps = 1e-5
    weight_sum = _sum_xla_order(weights)
    padding = torch.clamp_min(eps - weight_sum, 0)
    weights = weights + padding * _reciprocal(weights.shape[-1])
    weight_sum = weight_sum + padding

    # The CDF starts at exactly 0 and ends at exactly 1.
    pdf = weights * torch.reciprocal(weight_sum)
    cdf = torch.clamp_max(_cumsum_xla_order(pdf[..., :-1]), 1)
    zeros = torch.zeros_like(cdf[..., :1])
    cdf = torch.cat([zeros, cdf, zeros + 1], dim=-1)

    batch_shape = cdf.shape[:-1]
    if randomized:
        stride = 1 / num_samples
        u = torch.arange(num_samples, dtype=cdf.dtype, device=cdf.device) * stride
        jitter = uniform
        if jitter is None:
            jitter = torch.rand((*batch_shape, num_samples), generator=generator, dtype=cdf.dtype, device=cdf.device)
        u = u + jitter * (stride - _FLOAT32_EPS)
        # u lies in [0, 1): it may be 0 but never 1.
        u = torch.clamp_max(u, 1 - _FLOAT32_EPS)
    else:
        # Spans [0, 1 - eps], matching the range of the random draws.
        u = _linspace_from_zero(1.0 - _FLOAT32_EPS, num_samples, cdf)
        u = torch.broadcast_to(u, (*batch_shape, num_samples)).contiguous()

    # The sample's interval starts at the last cdf entry <= u (the reference's `u >= cdf` mask);
    # the cdf is sorted, so counting those entries finds it.
    above = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = above - 1
    last = cdf.shape[-1] - 1
    above = torch.clamp_max(above, last)
    bins_g0 = torch.gather(bins, -1, below)
    bins_g1 = torch.gather(bins, -1, above)
    cdf_g0 = torch.gather(cdf, -1, below)
    cdf_g1 = torch.gather(cdf, -1, above)

    t = torch.clamp(torch.nan_to_num((u - cdf_g0) / (cdf_g1 - cdf_g0), nan=0.0), 0, 1)
    return bins_g0 + t * (bins_g1 - bins_g0)


def volumetric_rendering(
    rgb: torch.Tensor, density: torch.Tensor, t_vals: torch.Tensor, dirs: torch.Tensor, white_bkgd: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite S intervals along each ray.

    Args:
      rgb: (..., S, 3) colours.  density: (..., S, 1) densities >= 0.
      t_vals: (..., S+1) fenceposts.  dirs: (..., 3) ray directions; interval lengths are
        scaled by |dirs| (not normalized).
      white_bkgd: composite onto white instead of black.
    Returns:
      comp_rgb: (..., 3);  distance: (..., ) expected distance sum(w * t_mid) / acc, clipped to
      [t_vals[..., 0], t_vals[..., -1]] (t_vals[..., 0] where acc = 0);  acc: (...,) total
      weight;  weights: (..., S).
    """
    t_mids = 0.5 * (t_vals[..., :-1] + t_vals[..., 1:])
    t_dists = t_vals[..., 1:] - t_vals[..., :-1]
    delta = t_dists * torch.sqrt((dirs * dirs).sum(dim=-1, keepdim=True))
    density_delta = density[..., 0] * delta

    alpha = 1 - torch.exp(-density_delta)
    # torch.cumsum (float64 accumulation on CPU) instead of XLA's blocked order: one kernel
    # instead of dozens, and the rendering weights move by < 1e-7.
    trans = torch.exp(
        -torch.cat([torch.zeros_like(density_delta[..., :1]), torch.cumsum(density_delta[..., :-1], dim=-1)], dim=-1)
    )
    weights = alpha * trans

    comp_rgb = (weights[..., None] * rgb).sum(dim=-2)
    acc = weights.sum(dim=-1)
    distance = (weights * t_mids).sum(dim=-1) / acc
    # The reference's nan_to_num(distance, inf) sets nan (acc = 0) to 0 (the inf lands in the
    # `copy` argument); the clip then moves those rays to the near bound.
    distance = torch.nan_to_num(distance, nan=0.0)
    distance = torch.minimum(torch.maximum(distance, t_vals[..., 0]), t_vals[..., -1])
    if white_bkgd:
        comp_rgb = comp_rgb + (1.0 - acc[..., None])
    return comp_rgb, distance, acc, weights
