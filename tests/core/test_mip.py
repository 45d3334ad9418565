"""core/mip.py against google/mipnerf: golden vectors, shapes, Monte-Carlo, gradients, randomness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from golden import load_golden
from reference_weights import GOLDEN_TOL, golden_error

from mipnerf_cli.core import mip


def assert_golden(got: torch.Tensor, want: np.ndarray, tol: float = GOLDEN_TOL) -> None:
    err = golden_error(got, want)
    assert err <= tol, f"max error {err:.3g} > {tol}"


def t(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array))


def random_rays(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=gen) * 2
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    directions = directions * (0.5 + 1.5 * torch.rand(n, 1, generator=gen))
    radii = 10 ** (-4 + 3 * torch.rand(n, 1, generator=gen))
    return origins, directions, radii


# ---------------------------------------------------------------- golden vectors


def test_pos_enc_golden():
    z = load_golden("pos_enc")
    out = mip.pos_enc(t(z["x"]), int(z["min_deg"]), int(z["max_deg"]), bool(z["append_identity"]))
    assert_golden(out, z["out"])


def test_expected_sin_golden():
    z = load_golden("expected_sin")
    y, y_var = mip.expected_sin(t(z["x"]), t(z["x_var"]))
    assert_golden(y, z["y"])
    assert_golden(y_var, z["y_var"])


@pytest.mark.parametrize("diag", [True, False])
def test_integrated_pos_enc_golden(diag):
    z = load_golden("integrated_pos_enc")
    cov = z["x_cov_diag"] if diag else z["x_cov_full"]
    out = mip.integrated_pos_enc((t(z["x"]), t(cov)), int(z["min_deg"]), int(z["max_deg"]), diag)
    assert_golden(out, z[f"out_diag_{str(diag).lower()}"])


@pytest.mark.parametrize("diag", [True, False])
def test_conical_frustum_to_gaussian_golden(diag):
    z = load_golden("conical_frustum_to_gaussian")
    mean, cov = mip.conical_frustum_to_gaussian(
        t(z["d"]), t(z["t0"]), t(z["t1"]), t(z["base_radius"]), diag, stable=bool(z["stable"])
    )
    assert_golden(mean, z[f"mean_diag_{str(diag).lower()}"])
    assert_golden(cov, z[f"cov_diag_{str(diag).lower()}"])


@pytest.mark.parametrize("ray_shape", ["cone", "cylinder"])
def test_cast_rays_golden(ray_shape):
    z = load_golden("cast_rays")
    means, covs = mip.cast_rays(
        t(z["t_vals"]), t(z["origins"]), t(z["directions"]), t(z["radii"]), ray_shape, bool(z["diag"])
    )
    assert_golden(means, z[f"means_{ray_shape}"])
    assert_golden(covs, z[f"covs_{ray_shape}"])


@pytest.mark.parametrize("lindisp", [False, True])
def test_sample_along_rays_golden(lindisp):
    z = load_golden("sample_along_rays")
    n = z["origins"].shape[0]
    near = torch.full((n, 1), float(z["near"]))
    far = torch.full((n, 1), float(z["far"]))
    t_vals, (means, covs) = mip.sample_along_rays(
        t(z["origins"]), t(z["directions"]), t(z["radii"]), int(z["num_samples"]), near, far,
        bool(z["randomized"]), lindisp, str(z["ray_shape"]),
    )  # fmt: skip
    suffix = f"lindisp_{str(lindisp).lower()}"
    assert_golden(t_vals, z[f"t_vals_{suffix}"])
    assert_golden(means, z[f"means_{suffix}"])
    assert_golden(covs, z[f"covs_{suffix}"])


def test_sample_along_rays_accepts_float_bounds():
    z = load_golden("sample_along_rays")
    t_vals, _ = mip.sample_along_rays(
        t(z["origins"]), t(z["directions"]), t(z["radii"]), int(z["num_samples"]), float(z["near"]),
        float(z["far"]), False, True, "cone",
    )  # fmt: skip
    assert_golden(t_vals, z["t_vals_lindisp_true"])


def test_resample_along_rays_golden():
    z = load_golden("resample_along_rays")
    new_t_vals, (means, covs) = mip.resample_along_rays(
        t(z["origins"]), t(z["directions"]), t(z["radii"]), t(z["t_vals"]), t(z["weights"]),
        bool(z["randomized"]), str(z["ray_shape"]), bool(z["stop_grad"]), float(z["resample_padding"]),
    )  # fmt: skip
    assert_golden(new_t_vals, z["new_t_vals"])
    assert_golden(means, z["means"])
    assert_golden(covs, z["covs"])


def test_sorted_piecewise_constant_pdf_golden():
    z = load_golden("sorted_piecewise_constant_pdf")
    samples = mip.sorted_piecewise_constant_pdf(
        t(z["bins"]), t(z["weights"]), int(z["num_samples"]), bool(z["randomized"])
    )
    assert_golden(samples, z["samples"])


@pytest.mark.parametrize("white_bkgd", [False, True])
def test_volumetric_rendering_golden(white_bkgd):
    z = load_golden("volumetric_rendering")
    outputs = mip.volumetric_rendering(t(z["rgb"]), t(z["density"]), t(z["t_vals"]), t(z["dirs"]), white_bkgd)
    for name, got in zip(["comp_rgb", "distance", "acc", "weights"], outputs):
        assert_golden(got, z[f"{name}_white_bkgd_{str(white_bkgd).lower()}"])


# ---------------------------------------------------------------- hand-computed cases and quirks


def test_safe_sin_wraps_like_python_modulo():
    wrap = float(np.float32(100 * np.pi))
    x = torch.tensor([1.0, -2.0, 400.0, -400.0, 2e4, -2e4, 314.0])
    got = mip.safe_sin(x)
    expected = [math.sin(v if abs(v) < wrap else math.fmod(math.fmod(v, wrap) + wrap, wrap)) for v in x.tolist()]
    torch.testing.assert_close(got, torch.tensor(expected), atol=2e-6, rtol=0)
    # float32(100*pi) is 5.9e-6 above 100*pi, so the wrap is not quite a period: after 63 wraps
    # the phase is off by 3.7e-4.
    assert abs(mip.safe_sin(torch.tensor(2e4)).item() - math.sin(2e4)) > 1e-4
    assert mip.safe_cos(torch.tensor(0.0)).item() == 1.0


def test_pos_enc_layout():
    x = torch.tensor([[0.1, -0.2, 0.3]])
    out = mip.pos_enc(x, 0, 2, append_identity=True)
    scaled = torch.cat([x, 2 * x], dim=-1)  # index = degree * 3 + axis
    expected = torch.cat([x, torch.sin(scaled), torch.cos(scaled)], dim=-1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert mip.pos_enc(x, 0, 2, append_identity=False).shape == (1, 12)


def test_expected_sin_limits():
    x = torch.tensor([0.3, -1.2, 2.0])
    y, y_var = mip.expected_sin(x, torch.zeros(3))
    torch.testing.assert_close(y, torch.sin(x))
    torch.testing.assert_close(y_var, torch.zeros(3), atol=1e-6, rtol=0)
    y, y_var = mip.expected_sin(x, torch.full((3,), 100.0))  # a very wide Gaussian averages sin out
    torch.testing.assert_close(y, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(y_var, torch.full((3,), 0.5), atol=1e-6, rtol=0)


def test_integrated_pos_enc_full_covariance_equals_its_diagonal():
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(4, 5, 3, generator=gen)
    a = torch.randn(4, 5, 3, 3, generator=gen) * 0.1
    cov = a @ a.transpose(-1, -2)
    full = mip.integrated_pos_enc((mean, cov), 0, 16, diag=False)
    diag = mip.integrated_pos_enc((mean, torch.diagonal(cov, dim1=-2, dim2=-1)), 0, 16, diag=True)
    assert torch.equal(full, diag)


def test_integrated_pos_enc_with_zero_covariance_is_pos_enc():
    x = torch.rand(6, 3)
    ipe = mip.integrated_pos_enc((x, torch.zeros(6, 3)), 0, 5)
    torch.testing.assert_close(ipe, mip.pos_enc(x, 0, 5, append_identity=False), atol=1e-6, rtol=0)


def test_sample_along_rays_has_num_samples_plus_one_fenceposts():
    origins, directions, radii = random_rays(3)
    t_vals, (means, covs) = mip.sample_along_rays(origins, directions, radii, 4, 2.0, 6.0, False, False, "cone")
    torch.testing.assert_close(t_vals, torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]).expand(3, 5))
    assert means.shape == covs.shape == (3, 4, 3)
    t_vals, _ = mip.sample_along_rays(origins, directions, radii, 2, 2.0, 6.0, False, True, "cone")
    torch.testing.assert_close(t_vals[0], torch.tensor([2.0, 3.0, 6.0]))  # 1/t linear: 1/2, 1/3, 1/6


def test_linspace_matches_jax_rounding():
    # jnp.linspace(0, 1, 25) is i * float32(1/24): entry 7 is 1 ulp below float32(7/24).
    u = mip._linspace_from_zero(1.0, 25, torch.zeros(1))
    expected = torch.arange(24, dtype=torch.float32) * torch.tensor(1 / 24, dtype=torch.float32)
    assert torch.equal(u[:-1], expected)
    assert u[-1].item() == 1.0
    assert not torch.equal(u, torch.linspace(0, 1, 25))


def test_encoding_and_sampling_constants_are_built_once_per_device_and_dtype():
    # A forward on a GPU would otherwise copy them host->device (and wait) every time.
    like = torch.zeros(3)
    assert mip._linspace_from_zero(1.0, 25, like) is mip._linspace_from_zero(1.0, 25, torch.ones(2))
    scales = mip._degree_scales(0, 16, like)
    assert scales is mip._degree_scales(0, 16, like)
    assert torch.equal(scales, torch.tensor([2.0**i for i in range(16)]))
    half = mip._degree_scales(0, 16, like.bfloat16())
    assert half.dtype == torch.bfloat16 and torch.equal(half.float(), scales)
    assert mip._degree_scales(2, 5, like).tolist() == [4.0, 8.0, 16.0]


def test_prefix_sums_follow_xla_order():
    # XLA's cumsum adds sequentially within blocks of 16, then adds the earlier blocks' total:
    # 1 + 15 * 2**-24 rounds back to 1 step by step, but the next block's 4 * 2**-24 = 2**-22
    # is added to 1 in one piece and survives.
    x = torch.tensor([1.0] + [2.0**-24] * 19)
    c = mip._cumsum_xla_order(x)
    assert c[15].item() == 1.0 and c[19].item() == 1.0 + 2.0**-22
    # Row sums of up to 32 entries are sequential: the small terms all round away.
    assert mip._sum_xla_order(torch.tensor([[1.0] + [2.0**-24] * 31])).item() == 1.0
    for length in (1, 5, 16, 17, 31, 33, 64, 129, 300):
        values = torch.rand(3, length, generator=torch.Generator().manual_seed(length))
        torch.testing.assert_close(
            mip._cumsum_xla_order(values), values.double().cumsum(-1).float(), rtol=1e-6, atol=1e-6
        )
        torch.testing.assert_close(
            mip._sum_xla_order(values)[..., 0], values.double().sum(-1).float(), rtol=1e-6, atol=1e-6
        )


def test_pdf_uniform_weights_give_evenly_spread_samples():
    bins = torch.linspace(0, 1, 5).expand(2, 5)
    samples = mip.sorted_piecewise_constant_pdf(bins, torch.ones(2, 4), 5, randomized=False)
    # u = linspace(0, 1 - 2**-23, 5) and the cdf is the identity on [0, 1].
    expected = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]) * (1 - 2**-23)
    torch.testing.assert_close(samples, expected.expand(2, 5), atol=1e-7, rtol=0)


def test_pdf_samples_start_at_first_bin_with_weight():
    bins = torch.arange(5, dtype=torch.float32)[None]
    weights = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    samples = mip.sorted_piecewise_constant_pdf(bins, weights, 3, randomized=False)
    # `u >= cdf` puts u = 0 at the right end of the zero-weight plateau, i.e. bin 2's left edge.
    assert samples[0, 0].item() == 2.0
    assert 3.99 < samples[0, -1].item() < 4.0


def test_pdf_all_zero_weights_sample_uniformly():
    bins = torch.linspace(2, 6, 9)[None]
    samples = mip.sorted_piecewise_constant_pdf(bins, torch.zeros(1, 8), 9, randomized=False)
    torch.testing.assert_close(samples[0], torch.linspace(2, 6, 9), atol=1e-5, rtol=0)


def test_resample_blurs_weights_and_keeps_fencepost_count():
    origins, directions, radii = random_rays(2)
    t_vals = torch.linspace(2, 6, 9).expand(2, 9)
    weights = torch.zeros(2, 8)
    weights[:, 3] = 1.0
    new_t_vals, (means, covs) = mip.resample_along_rays(
        origins, directions, radii, t_vals, weights, False, "cone", True, 0.01
    )
    assert new_t_vals.shape == (2, 9) and means.shape == covs.shape == (2, 8, 3)
    # Blurred weights: 0.5, 1, 0.5 on intervals 2..4 ([3, 4.5]), plus 0.01 padding everywhere
    # (97.6% of the mass). u = 0 still maps to t = 2 and the last u to just below 6.
    assert torch.all((new_t_vals[:, 1:-1] >= 3.0) & (new_t_vals[:, 1:-1] <= 4.5))
    assert torch.all(new_t_vals[:, 0] == 2.0)
    assert torch.all((new_t_vals[:, -1] > 5.99) & (new_t_vals[:, -1] <= 6.0))
    assert torch.all(new_t_vals[:, 1:] >= new_t_vals[:, :-1])


def test_volumetric_rendering_hand_case():
    t_vals = torch.tensor([[2.0, 3.0, 4.0], [2.0, 3.0, 4.0]])
    dirs = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]).expand(2, 2, 3)
    density = torch.tensor([[[math.log(2)], [0.0]], [[0.0], [0.0]]])
    comp_rgb, distance, acc, weights = mip.volumetric_rendering(rgb, density, t_vals, dirs, white_bkgd=False)
    # Ray 0: interval length 1 * |dir| 2, so alpha = 1 - exp(-2 ln 2) = 3/4.
    torch.testing.assert_close(weights[0], torch.tensor([0.75, 0.0]))
    torch.testing.assert_close(comp_rgb[0], torch.tensor([0.75, 0.0, 0.0]))
    assert distance[0].item() == pytest.approx(2.5)
    # Ray 1 is empty: acc 0 and distance at the near bound (nan_to_num(copy=inf) quirk), not nan.
    assert acc[1].item() == 0.0 and distance[1].item() == 2.0
    comp_white, _, _, _ = mip.volumetric_rendering(rgb, density, t_vals, dirs, white_bkgd=True)
    torch.testing.assert_close(comp_white, comp_rgb + (1 - acc[:, None]))


def test_cast_rays_rejects_unknown_shape():
    origins, directions, radii = random_rays(1)
    with pytest.raises(ValueError, match="ray_shape"):
        mip.cast_rays(torch.tensor([[2.0, 3.0]]), origins, directions, radii, "sphere")


def test_unstable_frustum_formula_agrees_for_wide_frustums():
    d = torch.tensor([[0.3, -0.5, 0.8]])
    t0, t1 = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.5, 3.0]])
    radius = torch.tensor([[0.05]])
    stable = mip.conical_frustum_to_gaussian(d, t0, t1, radius, diag=False, stable=True)
    unstable = mip.conical_frustum_to_gaussian(d, t0, t1, radius, diag=False, stable=False)
    for a, b in zip(stable, unstable):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-3)


# ---------------------------------------------------------------- Monte-Carlo checks of the Gaussians


def _frustum_points(gen, n, d, t0, t1, base_radius):
    """Uniform points in the conical frustum t in [t0, t1] of a cone of radius base_radius * t."""
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    t = (t0**3 * (1 - u) + t1**3 * u) ** (1 / 3)
    theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    r = base_radius * t * torch.sqrt(torch.rand(n, generator=gen, dtype=torch.float64))
    basis = torch.linalg.svd(torch.eye(3, dtype=torch.float64) - torch.outer(d, d) / d.dot(d))[0][:, :2]
    return (basis[:, 0:1] * r * torch.cos(theta) + basis[:, 1:2] * r * torch.sin(theta)).T + t[:, None] * d


def _cylinder_points(gen, n, d, t0, t1, radius):
    t = t0 + (t1 - t0) * torch.rand(n, generator=gen, dtype=torch.float64)
    theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    r = radius * torch.sqrt(torch.rand(n, generator=gen, dtype=torch.float64))
    basis = torch.linalg.svd(torch.eye(3, dtype=torch.float64) - torch.outer(d, d) / d.dot(d))[0][:, :2]
    return (basis[:, 0:1] * r * torch.cos(theta) + basis[:, 1:2] * r * torch.sin(theta)).T + t[:, None] * d


@pytest.mark.parametrize("shape", ["cone", "cylinder"])
def test_gaussian_matches_monte_carlo_moments(shape):
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        d = torch.randn(3, generator=gen, dtype=torch.float64)
        d = d / d.norm() * (0.8 + 0.4 * torch.rand((), generator=gen, dtype=torch.float64))
        mid = 1.5 + 1.5 * torch.rand((), generator=gen, dtype=torch.float64).item()
        half = 0.1 + 0.2 * torch.rand((), generator=gen, dtype=torch.float64).item()
        radius = 0.2 if shape == "cone" else 0.15
        t0, t1 = mid - half, mid + half
        sampler = _frustum_points if shape == "cone" else _cylinder_points
        points = sampler(gen, 400_000, d, t0, t1, radius)
        mc_mean = points.mean(0)
        mc_cov = torch.cov(points.T, correction=0)
        fn = mip.conical_frustum_to_gaussian if shape == "cone" else mip.cylinder_to_gaussian
        mean, cov = fn(d.float(), torch.tensor([t0]), torch.tensor([t1]), torch.tensor([radius]), diag=False)
        scale = mc_cov.abs().max().item()
        torch.testing.assert_close(mean[0].double(), mc_mean, atol=3e-3, rtol=0)
        torch.testing.assert_close(cov[0].double(), mc_cov, atol=0.02 * scale, rtol=0)
        _, cov_diag = fn(d.float(), torch.tensor([t0]), torch.tensor([t1]), torch.tensor([radius]), diag=True)
        torch.testing.assert_close(cov_diag[0], torch.diagonal(cov[0]))


# ---------------------------------------------------------------- shapes (docstrings must not drift)

BATCH = (2, 3)


def test_shapes_of_every_function_with_leading_batch():
    S, L = 5, 4
    x = torch.rand(*BATCH, 3)
    assert mip.pos_enc(x, 0, L).shape == (*BATCH, 3 + 2 * L * 3)
    assert mip.pos_enc(x, 0, L, append_identity=False).shape == (*BATCH, 2 * L * 3)
    y, y_var = mip.expected_sin(torch.rand(*BATCH, 7), torch.rand(*BATCH, 7))
    assert y.shape == y_var.shape == (*BATCH, 7)
    means3 = torch.rand(*BATCH, S, 3)
    assert mip.integrated_pos_enc((means3, torch.rand(*BATCH, S, 3)), 0, L).shape == (*BATCH, S, 2 * L * 3)
    assert mip.integrated_pos_enc((means3, torch.rand(*BATCH, S, 3, 3)), 0, L, diag=False).shape == (
        *BATCH, S, 2 * L * 3,
    )  # fmt: skip
    d = torch.rand(*BATCH, 3) + 0.1
    t0 = torch.rand(*BATCH, S) + 1
    t1 = t0 + 0.1
    r = torch.rand(*BATCH, 1) * 0.01
    for fn in (mip.conical_frustum_to_gaussian, mip.cylinder_to_gaussian):
        mean, cov = fn(d, t0, t1, r, True)
        assert mean.shape == cov.shape == (*BATCH, S, 3)
        mean, cov = fn(d, t0, t1, r, False)
        assert mean.shape == (*BATCH, S, 3) and cov.shape == (*BATCH, S, 3, 3)
    mean, cov = mip.lift_gaussian(d, t0, t1 - t0, t0, diag=True)
    assert mean.shape == cov.shape == (*BATCH, S, 3)
    origins = torch.rand(*BATCH, 3)
    t_vals = torch.sort(torch.rand(*BATCH, S + 1) * 4 + 2, dim=-1).values
    means, covs = mip.cast_rays(t_vals, origins, d, r, "cone")
    assert means.shape == covs.shape == (*BATCH, S, 3)
    means, covs = mip.cast_rays(t_vals, origins, d, r, "cylinder", diag=False)
    assert means.shape == (*BATCH, S, 3) and covs.shape == (*BATCH, S, 3, 3)
    near, far = torch.full((*BATCH, 1), 2.0), torch.full((*BATCH, 1), 6.0)
    for randomized in (False, True):
        tv, (means, covs) = mip.sample_along_rays(origins, d, r, S, near, far, randomized, False, "cone")
        assert tv.shape == (*BATCH, S + 1) and means.shape == covs.shape == (*BATCH, S, 3)
        tv2, (means, covs) = mip.resample_along_rays(
            origins, d, r, tv, torch.rand(*BATCH, S), randomized, "cone", True, 0.01
        )
        assert tv2.shape == (*BATCH, S + 1) and means.shape == covs.shape == (*BATCH, S, 3)
        samples = mip.sorted_piecewise_constant_pdf(tv, torch.rand(*BATCH, S), 11, randomized)
        assert samples.shape == (*BATCH, 11)
    comp_rgb, distance, acc, weights = mip.volumetric_rendering(
        torch.rand(*BATCH, S, 3), torch.rand(*BATCH, S, 1), t_vals, d, False
    )
    assert comp_rgb.shape == (*BATCH, 3)
    assert distance.shape == acc.shape == BATCH
    assert weights.shape == (*BATCH, S)


def test_leading_batch_shape_gives_the_same_values_as_flat():
    z = load_golden("resample_along_rays")
    args = [t(z[k]) for k in ("origins", "directions", "radii", "t_vals", "weights")]
    flat = mip.resample_along_rays(*args, False, "cone", True, 0.01)
    nested = mip.resample_along_rays(*[a.reshape(4, 8, -1) for a in args], False, "cone", True, 0.01)
    assert torch.equal(nested[0].reshape(flat[0].shape), flat[0])
    assert torch.equal(nested[1][0].reshape(flat[1][0].shape), flat[1][0])
    z = load_golden("volumetric_rendering")
    args = [t(z[k]) for k in ("rgb", "density", "t_vals", "dirs")]
    flat = mip.volumetric_rendering(*args, True)
    nested = mip.volumetric_rendering(*[a.reshape(4, 8, *a.shape[1:]) for a in args], True)
    for a, b in zip(flat, nested):
        assert torch.equal(b.reshape(a.shape), a)


# ---------------------------------------------------------------- randomness


def test_stratified_sampling_jitters_within_strata_and_is_seeded():
    origins, directions, radii = random_rays(64)
    near, far = torch.full((64, 1), 2.0), torch.full((64, 1), 6.0)
    det, _ = mip.sample_along_rays(origins, directions, radii, 8, near, far, False, False, "cone")

    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return mip.sample_along_rays(origins, directions, radii, 8, near, far, True, False, "cone", generator=gen)

    rand, (means, _) = draw(0)
    mids = 0.5 * (det[:, 1:] + det[:, :-1])
    lower = torch.cat([det[:, :1], mids], -1)
    upper = torch.cat([mids, det[:, -1:]], -1)
    assert torch.all((rand >= lower) & (rand <= upper))
    assert torch.all(rand[:, 1:] >= rand[:, :-1])
    # Jitter covers each stratum: offsets within [lower, upper] spread over (0, 1).
    offsets = (rand - lower) / (upper - lower)
    assert offsets.min() < 0.05 and offsets.max() > 0.95 and abs(offsets.mean().item() - 0.5) < 0.05
    again, (means_again, _) = draw(0)
    assert torch.equal(rand, again) and torch.equal(means, means_again)
    assert not torch.equal(rand, draw(1)[0])


def test_randomized_pdf_is_stratified_and_seeded():
    bins = torch.linspace(0, 1, 9).expand(512, 9)
    weights = torch.ones(512, 8)

    def draw(seed):
        return mip.sorted_piecewise_constant_pdf(bins, weights, 4, True, generator=torch.Generator().manual_seed(seed))

    samples = draw(0)
    # Uniform weights: sample i is uniform in [i/4, (i+1)/4).
    strata = torch.arange(4) / 4
    offsets = (samples - strata) * 4
    assert torch.all((offsets >= 0) & (offsets < 1))
    assert abs(offsets.mean().item() - 0.5) < 0.02
    assert torch.equal(samples, draw(0)) and not torch.equal(samples, draw(1))


def test_randomized_resample_is_seeded():
    z = load_golden("resample_along_rays")
    args = [t(z[k]) for k in ("origins", "directions", "radii", "t_vals", "weights")]

    def draw(seed):
        return mip.resample_along_rays(*args, True, "cone", True, 0.01, generator=torch.Generator().manual_seed(seed))[
            0
        ]

    first = draw(5)
    assert torch.equal(first, draw(5)) and not torch.equal(first, draw(6))
    assert torch.all(first[:, 1:] >= first[:, :-1])
    assert torch.all((first >= 2.0) & (first <= 6.0))


# ---------------------------------------------------------------- gradients


def test_gradients_through_ipe_and_rendering_are_finite():
    origins, directions, radii = random_rays(16, seed=4)
    origins.requires_grad_(True)
    directions.requires_grad_(True)
    radii.requires_grad_(True)
    near, far = torch.full((16, 1), 2.0), torch.full((16, 1), 6.0)
    t_vals, (means, covs) = mip.sample_along_rays(origins, directions, radii, 8, near, far, False, False, "cone")
    features = mip.integrated_pos_enc((means, covs), 0, 16)
    projection = torch.randn(features.shape[-1], 4, generator=torch.Generator().manual_seed(0)) * 0.1
    raw = features @ projection
    rgb, density = torch.sigmoid(raw[..., :3]), torch.nn.functional.softplus(raw[..., 3:])
    comp_rgb, distance, acc, _ = mip.volumetric_rendering(rgb, density, t_vals, directions, False)
    (comp_rgb.sum() + acc.sum()).backward()
    for tensor in (origins, directions, radii):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_ipe_and_rendering_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(2)
    means = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64)
    covs = torch.rand(2, 3, 3, generator=gen, dtype=torch.float64) * 0.01
    assert torch.autograd.gradcheck(
        lambda m, c: mip.integrated_pos_enc((m, c), 0, 4), (means.requires_grad_(), covs.requires_grad_())
    )
    rgb = torch.rand(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    density = torch.rand(2, 4, 1, generator=gen, dtype=torch.float64, requires_grad=True)
    t_vals = torch.linspace(2, 6, 5, dtype=torch.float64).expand(2, 5).clone().requires_grad_()
    dirs = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)

    def render(rgb, density, t_vals, dirs):
        comp_rgb, _, acc, weights = mip.volumetric_rendering(rgb, density, t_vals, dirs, True)
        return comp_rgb, acc, weights

    assert torch.autograd.gradcheck(render, (rgb, density, t_vals, dirs))


def test_resample_stop_grad_detaches_new_fenceposts():
    z = load_golden("resample_along_rays")
    args = [t(z[k]) for k in ("origins", "directions", "radii", "t_vals", "weights")]
    args[3].requires_grad_(True)
    new_t_vals, _ = mip.resample_along_rays(*args, False, "cone", True, 0.01)
    assert not new_t_vals.requires_grad
    new_t_vals, _ = mip.resample_along_rays(*args, False, "cone", False, 0.01)
    new_t_vals.sum().backward()
    assert torch.isfinite(args[3].grad).all() and args[3].grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_and_matches_cpu():
    z = load_golden("resample_along_rays")
    args = [t(z[k]) for k in ("origins", "directions", "radii", "t_vals", "weights")]
    cpu = mip.resample_along_rays(*args, False, "cone", True, 0.01)
    gpu = mip.resample_along_rays(*[a.cuda() for a in args], False, "cone", True, 0.01)
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-5, rtol=1e-5)
