"""core/kernels.py: the MKL and oneDNN Dense kernels agree, and the probe's choice is the one the
fast path runs (forced both ways, as on an Intel host where MKL wins and an AMD one where oneDNN does)."""

from __future__ import annotations

import pytest
import torch
from tiny import FAST_CONFIG as TINY
from tiny import rays_and_pixels
from tiny_runs import one_cpu_thread  # noqa: F401  (autouse: tiny models run faster on one thread)

from mipnerf_cli.core import fast, kernels
from mipnerf_cli.core.kernels import MKL, ONEDNN, Probe
from mipnerf_cli.core.models.mipnerf import MipNerf, ModelConfig
from mipnerf_cli.runtime import Runtime

needs_onednn = pytest.mark.skipif(not kernels.onednn_available(), reason="this torch build has no oneDNN")


def fake_probe(shape, train_s: dict[str, float], forward_s: dict[str, float] | None = None) -> Probe:
    return Probe(tuple(shape), 1, forward_s or dict(train_s), train_s)


def test_the_probe_picks_onednn_only_when_it_wins_by_the_margin():
    amd_like = fake_probe((2048, 256, 256), {"mkl": 1.6, "onednn": 1.0})  # oneDNN 1.6x faster
    intel_like = fake_probe((2048, 256, 256), {"mkl": 1.0, "onednn": 1.3})
    close = fake_probe((2048, 256, 256), {"mkl": 1.05, "onednn": 1.0})  # within MARGIN: keep MKL
    assert amd_like.choice(train=True) == "onednn" and amd_like.choice(train=False) == "onednn"
    assert intel_like.choice(train=True) == "mkl" and close.choice(train=True) == "mkl"
    assert fake_probe((1, 1, 1), {"mkl": 1.0}).choice(train=True) == "mkl"  # no oneDNN measured
    split = fake_probe((8, 4, 4), train_s={"mkl": 2.0, "onednn": 1.0}, forward_s={"mkl": 1.0, "onednn": 1.0})
    assert (split.choice(train=True), split.choice(train=False)) == ("onednn", "mkl")
    assert split.describe()["gflops"]["train"]["onednn"] == pytest.approx(3 * 2 * 8 * 4 * 4 / 1.0 / 1e9)


@needs_onednn
def test_probe_measures_both_kernels_forward_and_backward():
    result = kernels.probe(64, 16, 8)
    assert result.shape == (64, 16, 8) and result.threads == 1
    for table in (result.forward_s, result.train_s):
        assert set(table) == {"mkl", "onednn"} and all(0 < s < 1 for s in table.values())
    assert result.choice(train=True) in kernels.KERNELS
    assert torch.get_num_threads() == 1  # restored


@needs_onednn
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_probe_runs_its_backward_under_a_renderers_no_grad(mode):
    """The viewer's first render (under no_grad) asked for a probe and its backward failed."""
    with mode():
        result = kernels.probe(64, 16, 8)
    assert all(0 < s < 1 for s in result.train_s.values()) and set(result.train_s) == {"mkl", "onednn"}


def test_fastest_probes_once_per_shape(monkeypatch):
    calls = []

    def counting_probe(rows, k, n, threads=1):
        calls.append((rows, k, n, threads))
        return fake_probe((rows, k, n), {"mkl": 1.0, "onednn": 2.0})

    monkeypatch.setattr(kernels, "probe", counting_probe)
    monkeypatch.setattr(kernels, "_probes", {})
    first = kernels.fastest(12, 5, 5)
    assert kernels.fastest(12, 5, 5) is first
    kernels.fastest(24, 5, 5)
    assert calls == [(12, 5, 5, 1), (24, 5, 5, 1)]


def test_named_kernels_and_unknown_names():
    assert kernels.kernel_named("mkl") is MKL
    with pytest.raises(ValueError, match="unknown matmul kernel 'cublas'"):
        kernels.kernel_named("cublas")
    assert kernels.resolve("mkl", lambda: pytest.fail("no probe for a named kernel"), 1, True) is MKL


@needs_onednn
def test_onednn_dense_equals_mkl_dense_forward_and_backward():
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, 16)
    h, extra = torch.randn(40, 20), torch.randn(40, 4)
    results = []
    for kernel in (MKL, ONEDNN):
        layer.zero_grad(set_to_none=True)
        out = kernel.leave(kernel.relu_(kernel.dense(layer, kernel.enter(h), kernel.enter(extra))))
        out.square().sum().backward()
        results.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    assert not results[1][0].is_mkldnn
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert layer.weight.grad.layout == torch.strided  # the optimizer sees plain gradients


@needs_onednn
@pytest.mark.parametrize("winner", ["mkl", "onednn"])
def test_auto_runs_the_probed_kernel_in_training_and_rendering(monkeypatch, winner):
    """Forced outcomes of the probe: 'auto' then runs that kernel in every block."""
    loser = "onednn" if winner == "mkl" else "mkl"
    monkeypatch.setattr(kernels, "probe", lambda *key: fake_probe(key[:3], {winner: 1.0, loser: 1.6}))
    monkeypatch.setattr(kernels, "_probes", {})
    monkeypatch.setattr(kernels, "MIN_PROBE_MACS", 0)  # TINY is below the size that probes
    model = MipNerf(TINY)
    seen = []
    forward = model.forward

    def spy(*args, kernel=MKL, **kwargs):
        seen.append(kernel.name)
        return forward(*args, kernel=kernel, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    rays, pixels = rays_and_pixels(9)
    runtime = Runtime(device=torch.device("cpu"))
    assert runtime.cpu_kernel == "auto"
    fast.forward_backward(
        model, rays, pixels, rays.lossmult, randomized=True, white_bkgd=True, coarse_loss_mult=0.1,
        generator=torch.Generator().manual_seed(0), options=runtime.fast_options(4, 2),
    )  # fmt: skip
    fast.render_last_level(model, rays, True, fast.FastOptions(micro_batch=4, workers=2))
    assert seen and set(seen) == {winner}
    assert set(kernels._probes) == {(4 * TINY.num_samples, TINY.netwidth, TINY.netwidth, 1)}


def test_tiny_shapes_run_mkl_without_a_probe(monkeypatch):
    monkeypatch.setattr(kernels, "probe", lambda *key: pytest.fail("tiny shapes are not probed"))
    monkeypatch.setattr(kernels, "_probes", {})
    assert kernels.resolve("auto", lambda: (128, 32, 32), 1, True) is MKL
    assert kernels.MIN_PROBE_MACS > 128 * 32 * 32 and 2048 * 256 * 256 > kernels.MIN_PROBE_MACS


def test_a_family_without_a_matmul_shape_gets_no_kernel():
    class Other(MipNerf):
        def matmul_shape(self, rays):
            return None

    assert fast.kernel_for(Other(ModelConfig(num_samples=4, netwidth=8)), fast.FastOptions(), 4, 1, True) == {}
    assert MipNerf(TINY).matmul_shape(16) == (16 * TINY.num_samples, TINY.netwidth, TINY.netwidth)
